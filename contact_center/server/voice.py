"""The voice bot's cleanup context: speech models and text to speech, wired to the bot."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from chatbot.speech import SpeechError
from chatbot.speech.stream import SpeechModels
from chatbot.speech.tts import EspeakSynthesizer, Synthesizer
from contact_center import appkeys
from contact_center.bot.voice import VoiceBridge

log = logging.getLogger(__name__)


async def voice_ctx(app: web.Application) -> AsyncIterator[None]:
    """``app[appkeys.VOICE]`` when the bot runs and CC_VOICE_ENABLED (models load on first use)."""
    settings = app[appkeys.SETTINGS]
    gateway = app.get(appkeys.BOT)
    if gateway is None or not settings.voice_enabled:
        yield
        return
    tts: Synthesizer | None
    try:
        tts = EspeakSynthesizer()
    except SpeechError as exc:
        log.warning("voice bot: replies are not spoken: %s", exc)
        tts = None
    if not settings.voice_models:
        log.info("voice bot: no CC_VOICE_MODELS; voice customers are asked to type")
    bridge = VoiceBridge(gateway, SpeechModels(settings.voice_models), tts)
    app[appkeys.VOICE] = bridge
    try:
        yield
    finally:
        await bridge.close()
