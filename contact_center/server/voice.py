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
    models = SpeechModels(settings.voice_models, engines=settings.voice_engines)
    log.info("voice bot: voice input in %s",
             ", ".join(lang for lang in ("en", "zh", "yue") if models.configured(lang)) or "no language")
    bridge = VoiceBridge(gateway, models, tts)
    app[appkeys.VOICE] = bridge
    try:
        yield
    finally:
        await bridge.close()
