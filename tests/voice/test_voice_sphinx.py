"""PocketSphinx's bundled en-us model (PyPI ``pocketsphinx``) on speech made by espeak-ng."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chatbot.speech import ModelUnavailable, SpeechError, Utterance
from chatbot.speech.phrases import training_phrases
from chatbot.speech.sphinx_engine import SphinxEngine, SphinxRecognizer, load_model
from chatbot.speech.stream import RecognitionStream, SpeechModels, choose_engine, parse_engines
from tests.voice.conftest import EN_RELIABLE, espeak_en


def _decode(recognizer: SphinxRecognizer, pcm: bytes, step: int = 3200) -> list[Utterance]:
    finals = []
    for start in range(0, len(pcm), step):
        finals.extend(u for u in recognizer.accept(pcm[start:start + step]) if u.final)
    last = recognizer.finish()
    return [*finals, *([last] if last is not None else [])]


@pytest.mark.parametrize("voice", ["en", "en-us"])
@pytest.mark.parametrize("phrase", EN_RELIABLE)
def test_a_listed_phrase_is_heard_as_that_phrase(sphinx_engine: SphinxEngine, phrase: str,
                                                 voice: str) -> None:
    # The grammar is the bot's whole English training list, as in the server.
    recognizer = sphinx_engine.recognizer(training_phrases("en"))
    heard = _decode(recognizer, espeak_en(phrase, voice))
    assert [(u.text, u.mode, u.sure) for u in heard] == [(phrase, "phrase", True)]


def test_partials_come_before_the_final(sphinx_engine: SphinxEngine) -> None:
    recognizer = sphinx_engine.recognizer(training_phrases("en"))
    results: list[Utterance] = []
    pcm = espeak_en("are you open on public holidays")
    for start in range(0, len(pcm), 3200):
        results.extend(recognizer.accept(pcm[start:start + 3200]))
    assert results[-1].final and results[-1].text == "are you open on public holidays"
    partials = [u for u in results if not u.final]
    assert partials and all(u.confidence == 0.0 for u in partials)


def test_speech_outside_the_list_falls_back_to_free_recognition_unsure(
        sphinx_engine: SphinxEngine) -> None:
    recognizer = sphinx_engine.recognizer(["what are your opening hours", "mortgage rates"])
    heard = _decode(recognizer, espeak_en("my dog likes to play in the park"))
    assert len(heard) == 1
    assert heard[0].mode == "free" and not heard[0].sure and heard[0].text


def test_several_utterances_in_one_stream(sphinx_engine: SphinxEngine) -> None:
    recognizer = sphinx_engine.recognizer(training_phrases("en"))
    pcm = b"".join(espeak_en(p, pad_s=0.8) for p in EN_RELIABLE[:3])
    assert [u.text for u in _decode(recognizer, pcm) if u.mode == "phrase"] == EN_RELIABLE[:3]


def test_silence_gives_nothing_and_bad_input_is_refused(sphinx_engine: SphinxEngine) -> None:
    recognizer = sphinx_engine.recognizer(training_phrases("en"))
    assert _decode(recognizer, b"\0\0" * 16000 * 5) == []
    with pytest.raises(SpeechError, match="even number of bytes"):
        recognizer.accept(b"\0\0\0")
    with pytest.raises(SpeechError, match="take 16000 Hz PCM, not 8000 Hz: resample"):
        sphinx_engine.recognizer(rate=8000)


def test_long_speech_is_cut_not_grown(sphinx_engine: SphinxEngine) -> None:
    # 60 s of talk without a pause long enough to end an utterance: cut every max_utterance_s.
    words = espeak_en("are you open on public holidays", pad_s=0.0)
    recognizer = sphinx_engine.recognizer(training_phrases("en"), max_utterance_s=5.0)
    pcm = words * int(60 / (len(words) / 32000))
    heard = _decode(recognizer, pcm)
    assert 10 <= len(heard) <= 14, [u.text for u in heard]
    assert len(recognizer._audio) == 0


def test_words_outside_the_dictionary_drop_their_phrase_with_a_warning(
        sphinx_engine: SphinxEngine, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chatbot.speech.sphinx_engine"):
        usable, dropped = sphinx_engine.known_phrases(
            ["Mortgage rates", "usd to hkd rate", "see you", "see you"])
    assert usable == ["mortgage rates", "see you"] and dropped == ["usd to hkd rate"]
    assert "words outside the en dictionary (hkd, usd): usd to hkd rate" in caplog.text
    _, dropped = sphinx_engine.known_phrases(training_phrases("en"))
    assert "hiya" in dropped  # the bot's list has some; the rest is the grammar


def test_the_model_is_loaded_once_and_the_decoder_made_off_the_loop(
        sphinx_engine: SphinxEngine) -> None:
    assert load_model() is sphinx_engine.model
    assert SphinxEngine("en").model is sphinx_engine.model
    recognizer = sphinx_engine.recognizer(EN_RELIABLE)
    assert recognizer._decoder is None  # made by the first accept(), in the feeding thread


def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="no PocketSphinx model directory"):
        SphinxEngine("en", tmp_path / "absent")
    with pytest.raises(ModelUnavailable, match="is not a PocketSphinx model"):
        SphinxEngine("en", tmp_path)


async def test_the_stream_feeds_it_in_a_worker_thread(sphinx_engine: SphinxEngine) -> None:
    stream = RecognitionStream(sphinx_engine.recognizer(training_phrases("en")))
    pcm = espeak_en("mortgage rates")
    finals = []
    try:
        for start in range(0, len(pcm), 3200):
            finals.extend(u.text for u in await stream.feed(pcm[start:start + 3200]) if u.final)
    finally:
        stream.close()
    assert finals == ["mortgage rates"]


def test_the_engine_of_each_language() -> None:
    models = {"zh": Path("/m/zh"), "en": Path("/m/en")}
    assert choose_engine("en", {}, {}) == ("sphinx", None)  # out of the box
    assert choose_engine("en", models, {}) == ("vosk", Path("/m/en"))  # a Vosk model wins
    assert choose_engine("en", models, {"en": "sphinx"}) == ("sphinx", Path("/m/en"))
    assert choose_engine("en", {}, {"en": "none"}) is None
    assert choose_engine("zh", {}, {}) is None and choose_engine("yue", {}, {}) is None
    assert choose_engine("zh", models, {}) == ("vosk", Path("/m/zh"))
    assert parse_engines(" en=Sphinx, zh=vosk ,") == {"en": "sphinx", "zh": "vosk"}
    with pytest.raises(ValueError, match="language=engine"):
        parse_engines("sphinx")
    with pytest.raises(ValueError, match="one of vosk, sphinx, none"):
        parse_engines("en=whisper")


async def test_speech_models_use_sphinx_for_english_out_of_the_box() -> None:
    models = SpeechModels({})
    assert models.configured("en") and not models.configured("zh")
    assert (await models.engine("en")).name == "sphinx"
    with pytest.raises(ModelUnavailable, match="no speech model configured for language 'yue'"):
        await models.engine("yue")
    vosk_without_model = SpeechModels({}, engines={"zh": "vosk"})
    with pytest.raises(ModelUnavailable, match="needs a model: CC_VOICE_MODELS=zh=PATH"):
        await vosk_without_model.engine("zh")
