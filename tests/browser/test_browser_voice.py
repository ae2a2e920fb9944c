"""The customer page with the voice bot, in Chromium against the real server and the real Rasa bot.

Chromium's fake microphone plays a WAV made here with espeak-ng's Korean voice (it loops);
the server hears it with the Korean small Vosk model, mapped to the contact's language (en)
as in tests/voice/test_voice_bridge.py. The page must show what the recogniser hears (partial,
then final, as heard by the assistant), the line must reach the bot, and the bot's spoken reply
must arrive as audio on the page's call.
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatbot.speech import vosk_engine
from chatbot.speech.audio import resample
from chatbot.speech.tts import EspeakSynthesizer
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PageErrors
from tests.voice.conftest import KO_PHRASES, ko_model, voice_server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.rasa, pytest.mark.slow]

RATE = 48000
# Records what the caption showed, each time it changed (partials come and go quickly).
WATCH_CAPTION = """() => {
  window.__captions = [];
  const box = document.getElementById('voice-caption');
  const note = () => window.__captions.push([box.dataset.kind,
    document.getElementById('voice-caption-text').textContent]);
  new MutationObserver(note).observe(box, {attributes: true, childList: true, subtree: true,
                                           characterData: true});
}"""
# Audio energy received on the call (the bot's voice), from WebRTC's own statistics.
RECEIVED_ENERGY = """async () => {
  const pc = window.ccCall?.link?.pc;
  if (!pc) return 0;
  let energy = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') energy += s.totalAudioEnergy ?? 0;
  });
  return energy;
}"""


def _microphone_wav(tts: EspeakSynthesizer, path: Path, words: str) -> Path:
    """1 s of silence, ``words``, then 12 s of silence (Chromium loops the file)."""
    speech = tts.synthesize_sync(words, "ko")
    pcm = resample(speech.pcm, speech.rate, to=RATE)
    silence = b"\0\0" * RATE
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(silence + pcm + silence * 12)
    return path


@pytest.fixture
async def speaking_page(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A page factory of a Chromium whose microphone says 안녕하세요 (or the words given by
    indirect parametrisation) every 14 s."""
    from playwright.async_api import async_playwright

    words = getattr(request, "param", "안녕하세요")
    try:
        tts = EspeakSynthesizer()
        wav = _microphone_wav(tts, tmp_path / "microphone.wav", words)
    except Exception as exc:  # no espeak-ng: the fixture in tests/voice says how to get it
        pytest.skip(f"cannot make the microphone's speech: {exc}")
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required"]
    errors = PageErrors()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            async def make():  # type: ignore[no-untyped-def]
                context = await browser.new_context(viewport={"width": 1100, "height": 900},
                                                    bypass_csp=True)
                context.set_default_timeout(10_000)
                page = await context.new_page()
                errors.watch(page)
                return page

            make.errors = errors  # type: ignore[attr-defined]
            yield make
        finally:
            await browser.close()


async def _start_voice_contact(page, server, language: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(str(server.make_url("/")))
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    await page.check("input[name=channel][value=voice]")
    await page.select_option("#language", language)
    await page.click("#start-form button[type=submit]")
    await page.wait_for_selector("#state[data-state=bot]")


async def test_the_customer_sees_what_the_bot_hears_and_hears_it_answer(
    voice_server, speaking_page, screenshot  # noqa: F811
) -> None:
    page = await speaking_page()
    await _start_voice_contact(page, voice_server, "en")
    await page.evaluate(WATCH_CAPTION)
    # The model loads on first use (seconds); then the page says the assistant listens.
    await page.wait_for_selector("#voice[data-state=listening]", timeout=40_000)
    assert await page.text_content("#voice-state") == (
        "The assistant is listening: say what you need, or type below.")
    bot_lines_before = await page.locator("#chat li[data-sender=bot]").count()

    # The microphone's 안녕하세요 (it comes round every 14 s), heard by the assistant. On this
    # shared machine (load 9-13 on 2 cores) a stalled loop can drop packets in aiortc's jitter
    # buffer, and the damaged audio is heard as another phrase of the list (아니요), as in
    # tests/voice/test_voice_bridge.py: the page must show what was heard, which is one of the
    # phrases; how well the model hears them is tests/voice/test_voice_vosk.py's.
    # Up to six rounds (an unsure round is asked again and the next one is waited for; a
    # short rendering under load can end before any partial is shown): the first round whose
    # final "heard" came after live partials is the one checked.
    heard = None
    await page.wait_for_selector("#voice-caption[data-kind=heard]", timeout=90_000)
    for _round in range(6):
        heard = await page.text_content("#voice-caption-text")
        captions = await page.evaluate("window.__captions")
        print(f"heard: {heard}; captions: {captions}")
        if any(kind == "partial" for kind, _text in captions):
            break
        await page.evaluate("window.__captions = []")  # the next round's, from its start
        await page.wait_for_function(
            "window.__captions.some(([kind]) => kind === 'heard')", timeout=90_000)
    assert heard in KO_PHRASES, heard
    assert await page.text_content("#voice-caption-label") == "The assistant heard"
    confidence = await page.text_content("#voice-caption-confidence")
    assert confidence is not None and confidence.endswith("% sure"), confidence
    assert int(confidence.split("%")[0]) >= 80
    assert any(kind == "partial" for kind, _text in captions), captions  # live, before the final
    assert captions[-1] == ["heard", heard], captions

    # Into the bot as if typed, and the bot answers (in English: Rasa does not know Korean).
    await page.wait_for_selector(f"#chat li[data-sender=customer] >> text={heard}", timeout=20_000)
    assert await page.get_attribute("#chat li[data-sender=customer]", "data-via") == "voice"
    assert await page.get_attribute("#chat li[data-sender=customer] .who", "data-via") == "Said aloud"
    await page.wait_for_function(
        f"document.querySelectorAll('#chat li[data-sender=bot]').length > {bot_lines_before}",
        timeout=20_000)
    # ... and says it: audio arrives on the call.
    energy = 0.0
    for _ in range(100):
        energy = await page.evaluate(RECEIVED_ENERGY)
        if energy > 0.01:
            break
        await page.wait_for_timeout(100)
    assert energy > 0.01, energy
    assert await page.text_content("#remote-name") == "Assistant"
    await screenshot(page, "customer-voice-bot")
    assert not speaking_page.errors, speaking_page.errors


# 카드 분실 is not in the phrase list: heard, but not surely
@pytest.mark.parametrize("speaking_page", ["카드 분실"], indirect=True)
async def test_an_unsure_utterance_is_asked_again_not_acted_on(
    voice_server, speaking_page, screenshot, monkeypatch  # noqa: F811
) -> None:
    # Which rendering the model is sure of varies with the machine's load (a damaged one can be
    # heard surely as another phrase): here no phrase result is sure enough, so every utterance
    # takes the unsure path this test is about (what the model is sure of is tested in
    # tests/voice/test_voice_vosk.py, with the real threshold).
    monkeypatch.setattr(vosk_engine, "PHRASE_MIN_CONFIDENCE", 1.01)
    page = await speaking_page()
    await _start_voice_contact(page, voice_server, "en")
    await page.evaluate(WATCH_CAPTION)
    await page.wait_for_selector("#voice[data-state=listening]", timeout=40_000)
    await page.wait_for_selector("#voice-caption[data-kind=unsure]", timeout=45_000)
    print("captions:", await page.evaluate("window.__captions"))
    assert await page.text_content("#voice-caption-label") == (
        "Not sure I heard that right: please say it again")
    unsure = (await page.text_content("#voice-caption-text") or "").strip()
    assert unsure
    # Not given to the bot: no customer line; the bot says "please say it again" aloud.
    energy = 0.0
    for _ in range(100):
        energy = await page.evaluate(RECEIVED_ENERGY)
        if energy > 0.01:
            break
        await page.wait_for_timeout(100)
    assert energy > 0.01, energy
    said = await page.locator("#chat li[data-sender=customer] .text").all_text_contents()
    assert unsure not in said, said
    await screenshot(page, "customer-voice-say-again")
    assert not speaking_page.errors, speaking_page.errors


async def test_a_language_without_voice_input_is_told_so_and_goes_on_by_text(
    voice_server, speaking_page, screenshot  # noqa: F811
) -> None:
    page = await speaking_page()
    await _start_voice_contact(page, voice_server, "zh")  # no Mandarin model configured
    await page.wait_for_selector("#voice[data-state=unavailable]", timeout=20_000)
    # The page follows the contact's language (Mandarin, simplified by default).
    assert await page.text_content("#voice-state") == (
        "暂不支持您所用语言的语音输入，请输入文字提问；专员接听后可继续通话。")
    assert await page.is_hidden("#voice-caption")
    await page.fill("#chat-input", "你们几点开门？")
    bot_lines = await page.locator("#chat li[data-sender=bot]").count()
    await page.click("#chat-form button[type=submit]")
    await page.wait_for_function(
        f"document.querySelectorAll('#chat li[data-sender=bot]').length > {bot_lines}",
        timeout=20_000)
    await screenshot(page, "customer-voice-unavailable")
    assert not speaking_page.errors, speaking_page.errors
