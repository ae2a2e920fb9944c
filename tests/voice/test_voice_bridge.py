"""The voice bot end to end: a Python aiortc customer speaks (espeak-ng, sent over a real WebRTC
track) through the real server; the server's recogniser hears it, the line goes to the real Rasa
bot and the event rows, and the customer hears the bot's reply as audio.

Two engines: PocketSphinx's bundled en-us model, as a fresh ``make run`` has it (no
CC_VOICE_MODELS), hearing English; and Vosk with the Korean model (the only Vosk model
installable here), which the test maps to the contact's language (en) with the Korean phrase
list: Rasa does not understand Korean, so its reply is its English "didn't understand" answer.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Awaitable, Callable
from typing import Any

import av
import pytest
from aiohttp.test_utils import TestServer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from sqlmodel import select

from chatbot.speech.audio import resample, rms
from chatbot.speech.tts import VOICES, EspeakSynthesizer
from contact_center import appkeys
from contact_center.bot.gateway import fixed_replies
from contact_center.bot.voice import NO_VOICE_INPUT
from contact_center.config import Settings
from contact_center.db.engine import transaction
from contact_center.db.models import ContactEvent, Role
from contact_center.media.ice import IceSettings
from contact_center.server.app import create_app
from contact_center.tools.synthetic import LoopbackPeer, SyntheticPeer
from contact_center.tools.wsclient import SignallingClient
from tests.helpers import PASSWORD, make_user

RATE = 48000


class SpeakingTrack(MediaStreamTrack):
    """Customer microphone: silence, or the PCM given to ``say`` (48 kHz mono), paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue = bytearray()
        self._pts = 0
        self._start: float | None = None

    def say(self, pcm: bytes) -> None:
        self._queue.extend(pcm)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        samples = RATE // 50
        self._start = self._start or time.monotonic()
        wait = self._start + self._pts / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = bytes(self._queue[: samples * 2]).ljust(samples * 2, b"\0")
        del self._queue[: samples * 2]
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(chunk)
        frame.sample_rate, frame.pts = RATE, self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += samples
        return frame


class VoiceCustomer(LoopbackPeer):
    """Sends ``SpeakingTrack`` and measures the loud 20 ms frames it receives."""

    def __init__(self, ice: IceSettings) -> None:
        super().__init__(ice, name="voice-customer")
        self.mic = SpeakingTrack()
        self.pc.addTransceiver(self.mic, direction="sendrecv")
        self.loud: list[float] = []  # arrival times of received frames with speech in them
        self._task: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.create_task(self._listen(track))

    async def _listen(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = bytes(frame.planes[0])[: frame.samples * 2 * len(frame.layout.channels)]
            if rms(pcm) > 300:
                self.loud.append(time.monotonic())

    def loud_seconds(self) -> float:
        return len(self.loud) * 0.02

    async def close(self) -> None:
        await self.pc.close()
        self.mic.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


Clients = Callable[..., Awaitable[SignallingClient]]


@pytest.mark.rasa
@pytest.mark.slow
async def test_customer_speaks_and_hears_the_bot(
    engine_voice_server: TestServer, ice: IceSettings, tts: EspeakSynthesizer,
    request: pytest.FixtureRequest,
) -> None:
    voice_server = engine_voice_server
    # What the customer says: Korean to Vosk's Korean model, English to PocketSphinx.
    said, said_language = {"vosk": ("안녕하세요", "ko"),
                           "sphinx": ("what are your opening hours", "en")}[
        request.node.callspec.params["engine_voice_server"]]
    customer = SignallingClient(str(voice_server.make_url("")))
    await customer.as_guest()
    await customer.connect()
    peer = VoiceCustomer(ice)
    try:
        started = await customer.request("session.start", channels=["voice"], language="en")
        contact_id = started["contact_id"]
        assert started["state"] == "bot"
        await customer.wait_for("chat.message", contact_id=contact_id, sender="bot", timeout=30)

        # Media while the bot has the contact (before: only once connected to an advisor).
        await customer.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
        answer = await customer.wait_for("rtc.answer", contact_id=contact_id)
        await peer.accept_answer(answer["sdp"])
        async with asyncio.timeout(10):
            await peer.wait_connected()
        async with asyncio.timeout(30):  # the model loads on first use (about 8 s)
            while contact_id not in voice_server.app[appkeys.VOICE].sessions:
                await asyncio.sleep(0.05)
            await voice_server.app[appkeys.VOICE].sessions[contact_id].listening.wait()
        status = await customer.wait_for("voice.status", contact_id=contact_id, timeout=10)
        assert (status["state"], status["language"]) == ("listening", "en")

        speech = tts.synthesize_sync(said, said_language)
        heard: list[str] = []
        # Up to two tries, as a customer repeats themselves: on this shared machine (load 7 on
        # 2 cores) the server's loop sometimes stalls long enough for aiortc's audio jitter
        # buffer to drop packets, and the damaged audio is heard as 아니요. Rasa does not
        # understand Korean, and a second misunderstanding hands the contact off, so two at most.
        # (PocketSphinx: a first utterance not heard as a listed phrase is asked again.)
        for _attempt in range(2):
            peer.loud.clear()
            peer.mic.say(resample(speech.pcm, speech.rate, to=RATE))
            spoken_at = time.monotonic()
            caption = await customer.wait_for("voice.caption", contact_id=contact_id,
                                              final=True, timeout=30)
            heard_at = time.monotonic()
            heard.append(caption["text"])
            if not caption["sure"]:
                continue  # not acted on: the bot asks to say it again (no chat line)
            line = await customer.wait_for("chat.message", contact_id=contact_id,
                                           sender="customer", timeout=30)
            assert line["text"] == caption["text"]  # into the bot as if typed
            reply = await customer.wait_for("chat.message", contact_id=contact_id,
                                            sender="bot", timeout=30)
            replied_at = time.monotonic()
            if caption["text"] == said:
                break
        assert heard[-1] == said and caption["confidence"] >= 0.8, heard
        print(f"heard: {heard}")
        expected = tts.synthesize_sync(reply["text"], "en").seconds

        # The reply, spoken: loud frames for about as long as espeak-ng's rendering of it.
        deadline = time.monotonic() + expected + 15
        while peer.loud_seconds() < 0.6 * expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert 0.6 * expected <= peer.loud_seconds() <= 1.3 * expected, (
            peer.loud_seconds(), expected)
        first = min(t for t in peer.loud if t > spoken_at)
        # The end of speech is its last sample (espeak-ng's rendering ends in 0.3 s of silence).
        end = spoken_at + len(speech.pcm.rstrip(b"\0")) / 2 / speech.rate
        print(f"voice turn: heard {heard_at - end:.2f} s, bot reply {replied_at - end:.2f} s, "
              f"first audio {first - end:.2f} s after the last word")

        async with transaction(voice_server.app[appkeys.DB]) as session:
            events = (await session.exec(select(ContactEvent).where(
                ContactEvent.contact_id == contact_id, ContactEvent.kind == "voice_heard"))).all()
        assert [e.data["text"] for e in events] == heard
        assert events[-1].data["mode"] == "phrase" and events[-1].data["confidence"] >= 0.8
        # The bot's fixed replies were synthesised ahead while it listened: said from the cache.
        tts_cache = voice_server.app[appkeys.VOICE].tts._cache  # type: ignore[union-attr]
        wanted = {(VOICES["en"], " ".join(text.split())) for text in fixed_replies("en")}
        for _ in range(200):  # one espeak-ng run after another, on a busy machine
            if wanted <= set(tts_cache):
                break
            await asyncio.sleep(0.1)
        assert wanted <= set(tts_cache), len(wanted - set(tts_cache))
    finally:
        await peer.close()
        await customer.close()


@pytest.mark.rasa
async def test_a_language_without_a_model_is_told_to_type(
    engine_voice_server: TestServer, ice: IceSettings
) -> None:
    voice_server = engine_voice_server
    customer = SignallingClient(str(voice_server.make_url("")))
    await customer.as_guest()
    await customer.connect()
    peer = VoiceCustomer(ice)
    try:
        started = await customer.request("session.start", channels=["voice"], language="zh")
        contact_id = started["contact_id"]
        await customer.wait_for("chat.message", contact_id=contact_id, sender="bot", timeout=30)
        await customer.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
        answer = await customer.wait_for("rtc.answer", contact_id=contact_id)
        await peer.accept_answer(answer["sdp"])
        status = await customer.wait_for("voice.status", contact_id=contact_id, timeout=30)
        assert (status["state"], status["language"]) == ("unavailable", "zh")
        notice = await customer.wait_for("chat.message", contact_id=contact_id,
                                         sender="system", timeout=30)
        assert notice["text"] == NO_VOICE_INPUT["zh"]
        # The contact goes on by text with the bot.
        await customer.request("chat.send", contact_id=contact_id, text="你们几点开门？")
        await customer.wait_for("chat.message", contact_id=contact_id, sender="bot", timeout=30)
    finally:
        await peer.close()
        await customer.close()


async def test_a_queued_voice_contact_still_waits_for_an_advisor_for_media(
    fast_settings: Settings, redis_client: Any, ice: IceSettings
) -> None:
    # Only the bot state opens media early: a queued contact (here: no bot) still waits.
    srv = TestServer(create_app(fast_settings), host="127.0.0.1", port=fast_settings.port)
    await srv.start_server()
    customer = SignallingClient(str(srv.make_url("")))
    peer = VoiceCustomer(ice)
    try:
        await customer.as_guest()
        await customer.connect()
        started = await customer.request("session.start", channels=["voice"], language="en")
        with pytest.raises(Exception, match="media starts once connected"):
            await customer.request("rtc.offer", contact_id=started["contact_id"],
                                   sdp=await peer.offer())
    finally:
        await peer.close()
        await customer.close()
        await srv.close()


@pytest.mark.rasa
@pytest.mark.slow
async def test_after_the_handoff_the_customer_hears_the_advisor(
    voice_server: TestServer, ice: IceSettings, fast_settings: Settings
) -> None:
    user = await make_user(fast_settings, Role.ADVISOR, languages=["en"],
                           skills={"general": 3, "cards": 3})
    advisor = SignallingClient(str(voice_server.make_url("")))
    await advisor.login(user.username, PASSWORD)
    await advisor.connect()
    await advisor.request("agent.status", status="available")
    customer = SignallingClient(str(voice_server.make_url("")))
    await customer.as_guest()
    await customer.connect()
    peer = VoiceCustomer(ice)
    advisor_peer = SyntheticPeer(ice, video=False, name="advisor")
    try:
        started = await customer.request("session.start", channels=["voice"], language="en")
        contact_id = started["contact_id"]
        await customer.wait_for("chat.message", contact_id=contact_id, sender="bot", timeout=30)
        await customer.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
        await peer.accept_answer((await customer.wait_for("rtc.answer", contact_id=contact_id))["sdp"])
        async with asyncio.timeout(30):
            while contact_id not in voice_server.app[appkeys.VOICE].sessions:
                await asyncio.sleep(0.05)
        voice = voice_server.app[appkeys.VOICE].sessions[contact_id]
        await customer.request("chat.send", contact_id=contact_id, text="I want to talk to a person")
        await advisor.wait_for("offer", contact_id=contact_id, timeout=30)
        await advisor.request("offer.accept", contact_id=contact_id)
        await customer.wait_for("session.state", contact_id=contact_id, state="connected",
                                timeout=30)
        assert voice.task is not None
        async with asyncio.timeout(20):  # the bridge lets go and puts the relay back
            await asyncio.shield(voice.task)
        await advisor.request("rtc.offer", contact_id=contact_id, sdp=await advisor_peer.offer())
        await advisor_peer.accept_answer(
            (await advisor.wait_for("rtc.answer", contact_id=contact_id))["sdp"])
        peer.loud.clear()
        async with asyncio.timeout(20):  # the advisor's tone reaches the customer
            while peer.loud_seconds() < 1.0:
                await asyncio.sleep(0.1)
    finally:
        await advisor_peer.close()
        await peer.close()
        await customer.close()
        await advisor.close()
