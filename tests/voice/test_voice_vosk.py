"""VoskEngine with the real Korean small model on espeak-ng speech: phrase mode, confidence,
vocabulary checks, and the error cases (model, rate, silence, a long monologue)."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import pytest

from chatbot.speech import ModelUnavailable, SpeechError
from chatbot.speech.stream import RecognitionStream, SpeechModels, parse_models
from chatbot.speech.vosk_engine import VoskEngine, load_model
from tests.voice.conftest import KO_PHRASES, KO_RELIABLE, spoken


def recognise(engine: VoskEngine, pcm: bytes, phrases: list[str] | None = None,
              chunk: int = 3200) -> list:  # type: ignore[type-arg]
    rec = engine.recognizer(phrases)
    out = []
    for start in range(0, len(pcm), chunk):
        out.extend(rec.accept(pcm[start:start + chunk]))
    last = rec.finish()
    if last is not None:
        out.append(last)
    return out


@pytest.mark.parametrize("phrase", KO_RELIABLE)
def test_phrase_mode_hears_the_phrase(ko_engine: VoskEngine, tts, phrase: str) -> None:  # type: ignore[no-untyped-def]
    finals = [u for u in recognise(ko_engine, spoken(tts, phrase), KO_PHRASES) if u.final]
    assert [u.text for u in finals] == [phrase]
    assert finals[0].mode == "phrase" and finals[0].sure and finals[0].confidence >= 0.8


def test_free_mode_alone_is_not_trusted_on_synthetic_speech(ko_engine: VoskEngine, tts) -> None:  # type: ignore[no-untyped-def]
    finals = [u for u in recognise(ko_engine, spoken(tts, "안녕하세요")) if u.final]
    # What the issue measured: free recognition of espeak-ng Korean is not the phrase.
    assert finals and finals[0].mode == "free" and finals[0].text != "안녕하세요"


def test_partials_come_before_the_final(ko_engine: VoskEngine, tts) -> None:  # type: ignore[no-untyped-def]
    results = recognise(ko_engine, spoken(tts, "계좌 이체"), KO_PHRASES, chunk=1600)
    kinds = [u.final for u in results]
    assert False in kinds and kinds[-1] is True
    assert kinds.index(True) > kinds.index(False)


def test_a_phrase_outside_the_list_is_unsure_not_a_wrong_command(ko_engine: VoskEngine, tts) -> None:  # type: ignore[no-untyped-def]
    # "카드 분실" is not in the list: the result must not be one of the listed phrases taken
    # with confidence (the bot then asks again).
    finals = [u for u in recognise(ko_engine, spoken(tts, "카드 분실"), KO_PHRASES) if u.final]
    assert all(not (u.sure and u.text in KO_PHRASES) for u in finals), finals


def test_vocabulary_check_drops_unknown_words(ko_engine: VoskEngine) -> None:
    usable, dropped = ko_engine.known_phrases(["계좌 이체", "잃어버렸어요", "카드 분실", "계좌 이체"])
    assert usable == ["계좌 이체", "카드 분실"] and dropped == ["잃어버렸어요"]


def test_grammar_json_keeps_hangul(ko_engine: VoskEngine) -> None:
    # The pitfall: json.dumps' default escapes every Hangul word, which Vosk then drops.
    assert "\\u" in json.dumps(["계좌"]) and json.dumps(["계좌"], ensure_ascii=False) == '["계좌"]'
    rec = ko_engine.recognizer(["계좌 이체"])
    assert rec._phrase is not None  # built from the unescaped list (it recognises, see above)


def test_silence_gives_nothing(ko_engine: VoskEngine) -> None:
    assert [u for u in recognise(ko_engine, b"\0\0" * 16000 * 3, KO_PHRASES) if u.final] == []


def test_wrong_rate_and_odd_bytes_are_refused(ko_engine: VoskEngine) -> None:
    with pytest.raises(SpeechError, match="16000 Hz"):
        ko_engine.recognizer(rate=48000)
    with pytest.raises(SpeechError, match="even"):
        ko_engine.recognizer().accept(b"\0\0\0")


def test_missing_and_unreadable_models_say_so(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="no Vosk model directory"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match="not a readable Vosk model"):
        load_model(tmp_path / "empty")
    broken = tmp_path / "broken"
    (broken / "am").mkdir(parents=True)
    (broken / "am" / "final.mdl").write_bytes(b"not a model")
    (broken / "conf").mkdir()
    with pytest.raises(ModelUnavailable):
        load_model(broken)


def test_the_model_is_loaded_once(ko_model: Path, ko_engine: VoskEngine) -> None:
    assert load_model(ko_model) is ko_engine.model
    assert VoskEngine("ko", ko_model).model is ko_engine.model


def test_parse_models() -> None:
    assert parse_models(" en=/m/en , ko=/m/ko,") == {"en": Path("/m/en"), "ko": Path("/m/ko")}
    with pytest.raises(ValueError, match="language=path"):
        parse_models("en")


async def test_speech_models_report_missing_languages(ko_model: Path, tmp_path: Path) -> None:
    models = SpeechModels({"ko": ko_model, "en": tmp_path / "absent"})
    assert (await models.engine("ko")).language == "ko"
    with pytest.raises(ModelUnavailable, match="no speech model configured for language 'yue'"):
        await models.engine("yue")
    with pytest.raises(ModelUnavailable, match="no Vosk model directory"):
        await models.engine("en")
    assert not models.configured("en")  # remembered: not retried at every session


@pytest.mark.slow
async def test_ten_minute_monologue_is_cut_and_memory_bounded(ko_engine: VoskEngine, tts) -> None:  # type: ignore[no-untyped-def]
    # Ten minutes of speech without a pause long enough to end an utterance: the recogniser
    # cuts it every max_utterance_s and the process does not grow with the length of the talk.
    words = spoken(tts, "계좌 이체 잔액 확인 상담원 연결", pad_s=0.0)
    loop_s = len(words) / 32000
    stream = RecognitionStream(ko_engine.recognizer(KO_PHRASES, max_utterance_s=20.0))
    finals = 0
    rss = []
    try:
        for i in range(int(600 / loop_s) + 1):
            for start in range(0, len(words), 8000):
                finals += sum(u.final for u in await stream.feed(words[start:start + 8000]))
            if i % 50 == 0:
                rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    finally:
        stream.close()
    assert finals >= 600 / 20 - 1
    growth_mb = (rss[-1] - rss[1]) / 1024
    assert growth_mb < 64, f"RSS grew {growth_mb:.0f} MB over the monologue ({os.getpid()})"


def test_the_model_is_loaded_through_a_view_with_shorter_endpointing(tmp_path: Path) -> None:
    from chatbot.speech.vosk_engine import _endpointing_view

    model = tmp_path / "m"
    (model / "am").mkdir(parents=True)
    (model / "am" / "final.mdl").write_bytes(b"x")
    (model / "conf").mkdir()
    (model / "conf" / "mfcc.conf").write_text("--sample-frequency=16000\n")
    shipped = "--beam=10.0\n--endpoint.rule2.min-trailing-silence=0.5\n--endpoint.rule3.min-trailing-silence=1.0\n"
    (model / "conf" / "model.conf").write_text(shipped)
    (tmp_path / "views").mkdir()
    view = _endpointing_view(model, 0.25, tmp_path / "views")
    assert (view / "am").resolve() == (model / "am").resolve()
    assert (view / "conf" / "mfcc.conf").resolve() == (model / "conf" / "mfcc.conf").resolve()
    conf = (view / "conf" / "model.conf").read_text().splitlines()
    assert "--endpoint.rule2.min-trailing-silence=0.25" in conf
    assert "--endpoint.rule2.min-trailing-silence=0.5" not in conf
    assert "--endpoint.rule3.min-trailing-silence=1.0" in conf and "--beam=10.0" in conf
    assert (model / "conf" / "model.conf").read_text() == shipped  # the model is not touched


def test_an_utterance_ends_after_a_short_pause(ko_engine: VoskEngine, tts) -> None:  # type: ignore[no-untyped-def]
    # 0.45 s of silence after the last word (espeak-ng's own trailing silence cut off): Kaldi
    # as shipped ends the utterance about 1 s after it; the final must come from the audio
    # (our endpoint), not from finish().
    words = spoken(tts, "계좌 이체", pad_s=0).rstrip(b"\0")
    pcm = words[: len(words) // 2 * 2] + b"\0\0" * int(16000 * 0.45)
    rec = ko_engine.recognizer(KO_PHRASES)
    finals = [u for start in range(0, len(pcm), 1600) for u in rec.accept(pcm[start:start + 1600])
              if u.final]
    assert [u.text for u in finals] == ["계좌 이체"]
    assert rec.finish() is None


def test_a_short_pause_between_words_does_not_end_the_utterance(ko_engine: VoskEngine, tts) -> None:  # type: ignore[no-untyped-def]
    gap = b"\0\0" * int(16000 * 0.15)
    pcm = spoken(tts, "계좌", pad_s=0).rstrip(b"\0")
    pcm = pcm[: len(pcm) // 2 * 2] + gap + spoken(tts, "이체", pad_s=0.8)
    finals = [u for u in recognise(ko_engine, pcm, KO_PHRASES) if u.final]
    assert [u.text for u in finals] == ["계좌 이체"]
