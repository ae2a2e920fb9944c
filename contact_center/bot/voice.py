"""The voice bot: while a voice or video contact is with the bot, it listens and answers aloud.

``VoiceBridge.media_started`` (called once the customer's ``rtc.offer`` is answered) starts a
``_VoiceSession`` per contact that

* subscribes to the customer's inbound audio (the one place the server decodes audio on
  purpose), resamples it to 16 kHz mono s16 and feeds the language's recogniser in a worker
  thread (``chatbot.speech.stream``);
* tells the customer it listens (``voice.status``), pushes partial results as ``voice.caption``
  and gives each final utterance to ``BotGateway.customer_message`` as if typed, with an event
  row ``voice_heard`` (text, confidence, mode) in the contact's history; an utterance the
  recogniser is unsure of is not acted on: the customer is asked to say it again;
* speaks the bot's replies on the customer's outbound audio track (``_Speaker``, swapped in for
  the relay track of that sender), and stops speaking when the customer speaks (barge-in);
* ends when the contact leaves the bot (the relay track is put back, so the advisor's audio
  flows as in any call) or the call closes.

A language without a speech model gets ``voice.status`` ``unavailable`` and a system line saying
voice input is not available; the conversation continues by text.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from typing import Any, Literal

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from chatbot.speech import ModelUnavailable, SpeechError
from chatbot.speech.audio import Resampler16k
from chatbot.speech.engine import BYTES_PER_SECOND, Utterance
from chatbot.speech.phrases import training_phrases
from chatbot.speech.stream import RecognitionStream, SpeechModels
from chatbot.speech.tts import Speech, Synthesizer
from contact_center.background import stop_tasks
from contact_center.bot.gateway import SYSTEM_REF, BotGateway, fixed_replies
from contact_center.contacts import store
from contact_center.contacts.states import ContactState
from contact_center.db.engine import transaction
from contact_center.db.models import Contact
from contact_center.identity.auth import Identity
from contact_center.media.call import CallMedia
from contact_center.media.fanout import Subscription, cancel_and_wait
from contact_center.protocol import VoiceCaption, VoiceStatus

log = logging.getLogger(__name__)

CHUNK_BYTES = BYTES_PER_SECOND // 10  # feed the recogniser 100 ms at a time
FRAME_S = 0.02
STATE_CHECK_S = 2.0
DRAIN_S = 15.0
TAP_FRAMES = 50  # 1 s of 20 ms frames: a stalled loop must not cut holes in the speech
MAX_QUEUED_CHUNKS = 50  # 5 s of audio waiting for the recogniser, at most
NO_VOICE_INPUT = {
    "en": "Voice input is not available in this language yet; please type your question.",
    "zh": "暂不支持该语言的语音输入，请输入文字。",
    "yue": "暫時未支援呢種語言嘅語音輸入，請打字。",
}
# Spoken when the recogniser is unsure of an utterance (which is then not acted on).
SAY_AGAIN = {
    "en": "Sorry, I did not catch that. Please say it again.",
    "zh": "抱歉，我没听清楚，请再说一遍。",
    "yue": "唔好意思，我聽唔清楚，請你再講一次。",
}


class _Speaker(MediaStreamTrack):
    """The customer's outbound audio while the bot has the contact: speech, else silence."""

    kind = "audio"

    def __init__(self, rate: int = 48000) -> None:
        super().__init__()
        self.rate = rate
        self._queue: bytearray = bytearray()
        self._pts = 0
        self._start: float | None = None
        self.speaking_since: float | None = None
        self.first_audio_at: float | None = None  # monotonic time the last reply began

    def say(self, speech: Speech) -> None:
        pcm = speech.pcm
        if speech.rate != self.rate:
            from chatbot.speech.audio import resample

            pcm = resample(pcm, speech.rate, to=self.rate)
        self._queue.extend(pcm)

    def hush(self) -> bool:
        """Barge-in: drop what is left to say; True if it was speaking."""
        speaking = bool(self._queue)
        self._queue.clear()
        return speaking

    @property
    def speaking(self) -> bool:
        return bool(self._queue)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        samples = int(self.rate * FRAME_S)
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / self.rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        size = samples * 2
        chunk = bytes(self._queue[:size])
        if chunk and self.first_audio_at is None:
            self.first_audio_at = time.monotonic()
        del self._queue[:size]
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(chunk.ljust(size, b"\0"))
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._pts += samples
        return frame


class _VoiceSession:
    """One contact's listening and speaking while the bot has it."""

    def __init__(self, bridge: VoiceBridge, identity: Identity, contact: Contact,
                 call: CallMedia) -> None:
        self.bridge = bridge
        self.identity = identity
        self.contact = contact
        self.call = call
        self.speaker = _Speaker()
        self._sender: Any = None
        self._relay: MediaStreamTrack | None = None
        self.task: asyncio.Task[None] | None = None
        self.heard: list[Utterance] = []
        self.listening = asyncio.Event()  # set once audio goes to a recogniser
        self.chunks_dropped = 0

    # ------------------------------------------------------------ speaking

    def _install_speaker(self) -> None:
        pc = self.call.peer_connection("customer")
        if pc is None:
            return
        sender = next((t.sender for t in pc.getTransceivers() if t.kind == "audio"), None)
        if sender is None or sender.track is self.speaker:
            return
        self._sender, self._relay = sender, sender.track
        sender.replaceTrack(self.speaker)

    def _restore_relay(self) -> None:
        if self._sender is not None and self._sender.track is self.speaker:
            self._sender.replaceTrack(self._relay)
        self._sender = None

    async def speak(self, text: str) -> None:
        tts = self.bridge.tts
        if tts is None or self.contact.language not in tts.languages():
            return
        try:
            speech = await tts.synthesize(text, self.contact.language)
        except SpeechError as exc:
            log.warning("voice %s: cannot speak: %s", self.contact.id, exc)
            return
        self._install_speaker()  # again: the customer may have renegotiated
        self.speaker.first_audio_at = None
        self.speaker.say(speech)

    async def _warm_speech(self) -> None:
        """Synthesise the bot's fixed replies ahead (the TTS caches them per text): the first
        audio of such a reply then waits for no synthesis."""
        tts = self.bridge.tts
        language = self.contact.language
        if tts is None or language not in tts.languages():
            return
        texts = [*fixed_replies(language, self.bridge.gateway.catalogue),
                 SAY_AGAIN.get(language, SAY_AGAIN["en"])]
        for text in texts:
            try:
                await tts.synthesize(text, language)
            except SpeechError as exc:
                log.warning("voice %s: cannot prepare a reply: %s", self.contact.id, exc)
                return

    # ------------------------------------------------------------ listening

    async def run(self) -> None:
        try:
            await self._listen()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("voice %s: the voice bot failed; the contact continues by text",
                          self.contact.id)
        finally:
            # The last reply (a handoff says "connecting you...") is heard to its end, unless
            # the call closed or we are being cancelled.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_S):
                    while self.speaker.speaking and not self.call.closed:  # noqa: ASYNC110
                        await asyncio.sleep(FRAME_S)
            self._restore_relay()
            self.speaker.stop()

    async def _listen(self) -> None:
        self._install_speaker()
        try:
            engine = await self.bridge.models.engine(self.contact.language)
        except ModelUnavailable as exc:
            log.info("voice %s: %s", self.contact.id, exc)
            await self._status("unavailable")
            await self.bridge.gateway.svc.post_chat(
                self.contact, sender_ref=SYSTEM_REF, sender_role="system",
                text=NO_VOICE_INPUT.get(self.contact.language, NO_VOICE_INPUT["en"]))
            return  # the relay track goes back: the advisor's audio flows as in any call
        phrases = self.bridge.phrases.get(self.contact.language)
        if phrases is None:
            phrases = training_phrases(self.contact.language)
        stream = RecognitionStream(engine.recognizer(phrases or None),
                                   name=f"speech-{self.contact.id}")
        tap = self.call.subscribe("customer", "audio", max_queued=TAP_FRAMES)
        # The tap keeps only its latest frame: one task reads it without ever waiting on the
        # recogniser, and hands 100 ms chunks over a bounded queue (old audio is dropped first).
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=MAX_QUEUED_CHUNKS)
        reader = asyncio.create_task(self._read(tap, chunks), name=f"voice {self.contact.id} read")
        warm = asyncio.create_task(self._warm_speech(), name=f"voice {self.contact.id} warm")
        self.listening.set()
        await self._status("listening")
        checked = time.monotonic()
        try:
            while (chunk := await chunks.get()) is not None:
                for utterance in await stream.feed(chunk):
                    if not await self._on_utterance(utterance):
                        return  # the bot has let go of the contact
                if time.monotonic() - checked > STATE_CHECK_S:
                    # A typed line (or a timer) may have handed the contact off meanwhile.
                    checked = time.monotonic()
                    if not await self._still_with_bot():
                        return
        finally:
            tap.stop()
            await cancel_and_wait(warm)
            await cancel_and_wait(reader)
            stream.close()
            log.info("voice %s: stopped listening (%d frames, %d chunks dropped)",
                     self.contact.id, tap.frames_dropped, self.chunks_dropped)

    async def _read(self, tap: Subscription, chunks: asyncio.Queue[bytes | None]) -> None:
        resampler = Resampler16k()
        pending = bytearray()
        try:
            while True:
                try:
                    frame = await tap.recv()
                except MediaStreamError:
                    return  # the call closed
                pending.extend(resampler.convert(frame))  # type: ignore[arg-type]
                if len(pending) < CHUNK_BYTES:
                    continue
                if chunks.full():
                    chunks.get_nowait()  # the recogniser fell behind: latency over completeness
                    self.chunks_dropped += 1
                chunks.put_nowait(bytes(pending))
                pending.clear()
        finally:
            if chunks.full():
                chunks.get_nowait()
            chunks.put_nowait(None)

    async def _on_utterance(self, utterance: Utterance) -> bool:
        svc = self.bridge.gateway.svc
        if self.speaker.hush():
            log.info("voice %s: barge-in", self.contact.id)
        final = utterance.final
        await svc.bus.publish(self.contact.customer_ref, VoiceCaption(
            contact_id=self.contact.id, text=utterance.text, final=final,
            confidence=utterance.confidence if final else None,
            sure=utterance.sure if final else None))
        if not final:
            return True
        self.heard.append(utterance)
        async with transaction(svc.db) as session:
            await store.add_event(
                session, contact_id=self.contact.id, actor=self.identity.ref, kind="voice_heard",
                data={"text": utterance.text, "confidence": round(utterance.confidence, 3),
                      "mode": utterance.mode, "sure": utterance.sure,
                      "language": self.contact.language})
        if not utterance.sure:
            # Acting on a wrong phrase is worse than asking: the customer says it again.
            await self.speak(SAY_AGAIN.get(self.contact.language, SAY_AGAIN["en"]))
            return True
        seq = await self.bridge.gateway.customer_message(self.identity, self.contact.id,
                                                         utterance.text)
        if seq is None:
            return False
        for line in await svc.history(self.contact.id):
            if line["seq"] > seq and line["sender"] == "bot":
                await self.speak(str(line["text"]))
        return await self._still_with_bot()

    async def _status(self, state: Literal["listening", "unavailable"]) -> None:
        await self.bridge.gateway.svc.bus.publish(self.contact.customer_ref, VoiceStatus(
            contact_id=self.contact.id, state=state, language=self.contact.language))

    async def _still_with_bot(self) -> bool:
        async with transaction(self.bridge.gateway.svc.db) as session:
            contact = await store.get_contact(session, contact_id=self.contact.id)
        return contact is not None and contact.state == ContactState.BOT


class VoiceBridge:
    """Voice sessions of this process's contacts (``app[appkeys.VOICE]``)."""

    def __init__(self, gateway: BotGateway, models: SpeechModels, tts: Synthesizer | None, *,
                 phrases: dict[str, list[str]] | None = None) -> None:
        self.gateway = gateway
        self.models = models
        self.tts = tts
        self.phrases = phrases or {}  # language → phrase list; else the bot's training examples
        self.sessions: dict[str, _VoiceSession] = {}

    async def media_started(self, identity: Identity, contact_id: str) -> None:
        """The customer's media of ``contact_id`` is up: listen if the bot has the contact."""
        if contact_id in self.sessions:
            return
        svc = self.gateway.svc
        async with transaction(svc.db) as session:
            contact = await store.get_contact(session, contact_id=contact_id)
        call = svc.media.get(contact_id)
        if (contact is None or contact.state != ContactState.BOT or call is None
                or contact.customer_ref != identity.ref):
            return
        voice = _VoiceSession(self, identity, contact, call)
        self.sessions[contact_id] = voice
        voice.task = asyncio.create_task(voice.run(), name=f"voice {contact_id}")
        voice.task.add_done_callback(lambda _t: self.sessions.pop(contact_id, None))

    async def close(self) -> None:
        """End every voice session (cleanup context). Idempotent."""
        tasks = [v.task for v in self.sessions.values() if v.task is not None]
        await stop_tasks(tasks)
        self.sessions.clear()
