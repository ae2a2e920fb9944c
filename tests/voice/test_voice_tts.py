"""EspeakSynthesizer: real espeak-ng speech in English, Mandarin and Cantonese."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chatbot.speech import SpeechError
from chatbot.speech.audio import rms
from chatbot.speech.tts import EspeakSynthesizer

LINES = {
    "en": "Your card has been blocked. An advisor will call you back.",
    "zh": "您的银行卡已经冻结，客户经理会给您回电话。",
    "yue": "你張卡已經凍結咗，客戶經理會打返畀你。",
}


@pytest.mark.parametrize("language", ["en", "zh", "yue"])
async def test_speech_is_audible_and_about_as_long_as_the_text(
    tts: EspeakSynthesizer, language: str
) -> None:
    speech = await tts.synthesize(LINES[language], language)
    assert speech.rate == 22050
    # Measured with espeak-ng 1.51 at 175 wpm: en 3.6 s, cmn 8.0 s, yue 4.0 s for these lines.
    assert 2.5 < speech.seconds < 10.0, speech.seconds
    assert rms(speech.pcm) > 500  # speech, not silence (digital silence is 0)


async def test_a_reply_is_synthesised_once(tts: EspeakSynthesizer) -> None:
    before = tts.synthesised
    first, second = await asyncio.gather(
        tts.synthesize("Hello there", "en"), tts.synthesize("Hello there", "en")
    )
    again = await tts.synthesize("  Hello   there ", "en")
    assert first == second == again
    assert tts.synthesised - before <= 2  # both may race to make it; never a third time


async def test_synthesis_runs_off_the_loop(tts: EspeakSynthesizer) -> None:
    threads: list[str] = []
    real = tts.synthesize_sync

    def spy(text: str, language: str):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return real(text, language)

    tts.synthesize_sync = spy  # type: ignore[method-assign]
    try:
        await tts.synthesize("off the loop", "en")
    finally:
        del tts.synthesize_sync
    assert threads and threads[0] != threading.main_thread().name


async def test_unknown_language_and_missing_program(tts: EspeakSynthesizer) -> None:
    with pytest.raises(SpeechError, match="no espeak-ng voice for language 'fr'"):
        await tts.synthesize("bonjour", "fr")
    with pytest.raises(SpeechError, match="not installed"):
        EspeakSynthesizer(program="espeak-ng-that-is-not-there")
