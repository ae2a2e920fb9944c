"""``contact-center voice transcribe``: the real CLI on a WAV made by espeak-ng."""

from __future__ import annotations

from pathlib import Path

from chatbot.speech.tts import EspeakSynthesizer
from tests.helpers import cli_env, run_cli
from tests.voice.conftest import KO_PHRASES


def test_transcribe_prints_the_phrase(tmp_path: Path, ko_model: Path,
                                      tts: EspeakSynthesizer) -> None:
    wav = tmp_path / "hello.wav"
    wav.write_bytes(_wav(tts, "계좌 이체"))
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("# the bank's commands\n" + "\n".join([*KO_PHRASES, "잃어버렸어요"]) + "\n",
                       encoding="utf-8")
    done = run_cli("voice", "transcribe", str(wav), "--model", str(ko_model), "--phrases",
                   str(phrases), "-v", env=cli_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    text, confidence, mode = done.stdout.strip().split("\t")
    assert (text, mode) == ("계좌 이체", "phrase") and float(confidence) >= 0.8
    assert "dropped (outside the vocabulary): 잃어버렸어요" in done.stderr


def test_transcribe_says_what_is_wrong(tmp_path: Path) -> None:
    wav = tmp_path / "not.wav"
    wav.write_text("hello")
    done = run_cli("voice", "transcribe", str(wav), "--model", str(tmp_path), env=cli_env())
    assert done.returncode == 1 and "not a PCM WAV file" in done.stderr
    done = run_cli("voice", "transcribe", str(tmp_path / "none.wav"), "--model",
                   str(tmp_path / "nomodel"), env=cli_env())
    assert done.returncode == 1 and "voice transcribe:" in done.stderr


def _wav(tts: EspeakSynthesizer, text: str) -> bytes:
    import subprocess

    return subprocess.run([tts.program, "-v", "ko", "--stdout", text], capture_output=True,
                          check=True).stdout


def test_transcribe_with_the_bundled_english_engine(tmp_path: Path) -> None:
    import subprocess

    wav = tmp_path / "hours.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), "what are your opening hours"],
                   check=True, timeout=30)
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("what are your opening hours\nmortgage rates\nusd rates\n",
                       encoding="utf-8")
    done = run_cli("voice", "transcribe", str(wav), "--engine", "sphinx", "--phrases",
                   str(phrases), "-v", env=cli_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split("\t")[::2] == ["what are your opening hours", "phrase"]
    assert "dropped (outside the vocabulary): usd rates" in done.stderr
    done = run_cli("voice", "transcribe", str(wav), env=cli_env())
    assert done.returncode == 2 and "the vosk engine needs --model" in done.stderr
