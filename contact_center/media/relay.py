"""Encoded relay: forward VP8/H.264/Opus frames from one leg to the other without decoding them.

aiortc decodes every inbound frame and encodes every outbound one; a relay between two legs that
negotiated the same codec needs neither. Two taps on aiortc 1.16.0, both behind this module:

* inbound, ``EncodedSource``: ``RTCRtpReceiver._handle_rtp_packet`` assembles a frame in its
  jitter buffer, maps its timestamp (``TimestampMapper``, from 0, unwrapped) and calls
  ``self.__decoder_queue.put((codec, JitterFrame))``; the decoder thread ``get``s from the same
  object. ``_DecoderGate`` replaces ``_RTCRtpReceiver__decoder_queue``: every frame goes to the
  relays, and on to the real queue (hence the decoder) only while something must see pixels
  (a ``subscribe()`` tap, or a relay that fell back to transcoding); video then starts at a
  keyframe. The decoder thread creates its decoder on its first frame, so none exists otherwise.
  Keyframe requests go upstream with ``RTCRtpReceiver._send_rtcp_pli(media_ssrc)``.
* outbound, ``install_sender_hooks``: ``RTCRtpSender._next_encoded_frame`` creates its encoder
  with ``get_encoder`` only while ``_RTCRtpSender__encoder`` is None and packs ``av.Packet``s
  (``encoder.pack``) instead of encoding them, the path ``MediaPlayer(decode=False)`` uses.
  ``PacketEncoder`` is preset there: it packetizes packets and creates a real encoder only if
  decoded frames arrive (codec mismatch). VP8 goes through ``Vp8Encoder._packetize``; H.264
  frames, which aiortc's depacketizer (``h264_depayload``) assembles as Annex B NAL units with
  4-byte start codes, through ``H264Encoder._split_bitstream`` and ``_packetize`` (STAP-A /
  FU-A, packetization-mode 1), as ``H264Encoder.pack`` does. H.264 is relayed only between
  legs with the same packetization mode and profile (``same_format``). PLI/FIR from the far
  end call ``RTCRtpSender._send_keyframe``, wrapped per instance to forward the request upstream.
  The negotiated send codec is ``RTCRtpTransceiver._codecs[0]`` (what ``send`` is given).

``check_aiortc`` refuses any other aiortc version and checks that these attributes still exist;
``tests/media/test_media_relay.py`` fails loudly when an upgrade changes them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import random
import time
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import aiortc
import av
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from contact_center.media.encoded import EncodedFrame
from contact_center.media.fanout import Frame
from recordings import bitstream

if TYPE_CHECKING:
    from contact_center.media.encoded import EncodedTap
    from contact_center.media.fanout import TrackFanout

logger = logging.getLogger(__name__)

PINNED_AIORTC_VERSION = "1.16.0"

RelayPath = Literal["encoded", "transcode"]
"""``encoded``: forward same-codec media as is; ``transcode``: always decode and re-encode."""
RelayMode = Literal["encoded", "transcode"]

RELAYABLE = frozenset({"video/vp8", "video/h264", "audio/opus"})
KEYFRAME_REQUEST_INTERVAL = 0.25  # seconds between two PLIs sent upstream for one source
MAX_QUEUED = {"video": 60, "audio": 25}  # about 2 s of video, 0.5 s of audio

_RECEIVER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RECEIVER_RTX = "_RTCRtpReceiver__rtx_ssrc"
_SENDER_ENCODER = "_RTCRtpSender__encoder"


class AiortcMismatch(RuntimeError):
    """The installed aiortc is not the one this module's private hooks were reviewed against."""


def check_aiortc() -> None:
    """Raise ``AiortcMismatch`` unless aiortc is the reviewed version with the hooked methods."""
    if aiortc.__version__ != PINNED_AIORTC_VERSION:
        raise AiortcMismatch(
            f"aiortc {aiortc.__version__} is not the reviewed {PINNED_AIORTC_VERSION}: check "
            "RTCRtpReceiver._handle_rtp_packet/decoder_worker and "
            "RTCRtpSender._next_encoded_frame/_send_keyframe, then update "
            "contact_center/media/relay.py (or use relay path 'transcode')"
        )
    for owner, name in (
        (RTCRtpReceiver, "_send_rtcp_pli"),
        (RTCRtpReceiver, "_handle_rtp_packet"),
        (RTCRtpSender, "_send_keyframe"),
        (RTCRtpSender, "_next_encoded_frame"),
        (Vp8Encoder, "_packetize"),
        (H264Encoder, "_packetize"),
        (H264Encoder, "_split_bitstream"),
    ):
        if not callable(getattr(owner, name, None)):
            raise AiortcMismatch(f"aiortc {owner.__name__}.{name} is gone; review relay.py")


def codec_key(codec: RTCRtpCodecParameters) -> str:
    return codec.mimeType.lower()


def _h264_format(codec: RTCRtpCodecParameters) -> tuple[str, str, int]:
    """(packetization-mode, profile_idc+profile-iop as hex, level_idc) from the fmtp line."""
    params = codec.parameters or {}
    mode = str(params.get("packetization-mode", "0"))
    profile_level = str(params.get("profile-level-id", "42001f")).lower()  # RFC 6184 default
    try:
        level = int(profile_level[4:6], 16)
    except ValueError:
        level = -1
    return mode, profile_level[:4], level


def _format_key(codec: RTCRtpCodecParameters) -> str:
    """What ``same_format`` looks at, as one string (the relay re-decides when it changes)."""
    key = codec_key(codec)
    if key == "video/h264":
        return f"{key};{_h264_format(codec)}"
    return key


def same_format(received: RTCRtpCodecParameters, send: RTCRtpCodecParameters) -> bool:
    """Frames received as ``received`` can be sent as is on a sender negotiated as ``send``.

    Same mime type; for H.264 also the same packetization mode and profile (profile_idc and
    constraint flags of ``profile-level-id``), at a level the far end accepts (not above its
    own). Other fmtp parameters (Opus stereo/FEC...) do not change how frames are packed.
    """
    if codec_key(received) != codec_key(send):
        return False
    if codec_key(send) == "video/h264":
        r_mode, r_profile, r_level = _h264_format(received)
        s_mode, s_profile, s_level = _h264_format(send)
        return r_mode == s_mode == "1" and r_profile == s_profile and 0 <= r_level <= s_level
    return True


def is_keyframe(codec: RTCRtpCodecParameters, data: bytes) -> bool:
    """True for a frame a decoder can start at (audio, or a codec we cannot classify, too)."""
    return bitstream.is_keyframe(codec.mimeType, data)


EncodedSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]


class _UndecodedSink:
    """Stands in for a receiver's decoder queue: hands each frame to ``sink``, decodes nothing.
    Only the ``None`` that stops the decoder thread reaches the real queue."""

    def __init__(self, sink: EncodedSink, real: queue.Queue[Any]) -> None:
        self._sink = sink
        self._real = real

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self._real.put(None)
        else:
            self._sink(*item)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._real.get(*args, **kwargs)


def receive_undecoded(receiver: RTCRtpReceiver, sink: EncodedSink) -> None:
    """Give every assembled inbound frame of ``receiver`` to ``sink`` instead of its decoder
    (light load clients count frames this way; the server's own taps use ``EncodedSource``)."""
    real = getattr(receiver, _RECEIVER_QUEUE, None)
    if not isinstance(real, queue.Queue):
        raise AiortcMismatch(f"RTCRtpReceiver has no {_RECEIVER_QUEUE} queue; review relay.py")
    setattr(receiver, _RECEIVER_QUEUE, _UndecodedSink(sink, real))


def _media_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The SSRC the remote sends media on (not its RTX SSRC), most recent first."""
    rtx: dict[int, int] = getattr(receiver, _RECEIVER_RTX, {})
    sources = sorted(
        (s for s in receiver.getSynchronizationSources() if s.source not in rtx),
        key=lambda s: s.timestamp,
        reverse=True,
    )
    if sources:
        return sources[0].source
    return next(iter(rtx.values()), None)


class _DecoderGate:
    """Stands in for the receiver's decoder queue: relays every frame, decodes on demand."""

    def __init__(self, source: EncodedSource, real: queue.Queue[Any]) -> None:
        self._source = source
        self._real = real
        self._decoding = False

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:  # the receiver stops its decoder thread
            self._real.put(None)
            return
        codec, frame = item
        keyframe = self._source._on_encoded(codec, frame)
        if not self._source.wants_decoding():
            self._decoding = False
            return
        if not self._decoding:
            if not keyframe:  # a decoder started mid-stream needs a keyframe first
                self._source.request_keyframe()
                return
            self._decoding = True
        self._real.put(item)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._real.get(*args, **kwargs)


class EncodedSource:
    """One inbound receiver's encoded frames, handed to the relays and taps attached to it."""

    def __init__(
        self, receiver: RTCRtpReceiver, kind: str, *, name: str, track_id: str = ""
    ) -> None:
        self.receiver = receiver
        self.kind = kind
        self.name = name
        self.track_id = track_id or name
        self.taps: set[EncodedTap] = set()  # encoded.EncodedTap: recorders, fed before relays
        self.codec: RTCRtpCodecParameters | None = None
        self.frames = 0
        self.keyframes = 0
        self.keyframe_requests = 0
        self.wants_decoding: Callable[[], bool] = lambda: False
        self._relays: set[RelayTrack] = set()
        self._last_request = -1.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        real = getattr(receiver, _RECEIVER_QUEUE, None)
        if not isinstance(real, queue.Queue):
            raise AiortcMismatch(f"RTCRtpReceiver has no {_RECEIVER_QUEUE} queue; review relay.py")
        setattr(receiver, _RECEIVER_QUEUE, _DecoderGate(self, real))

    def _on_encoded(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> bool:
        self.frames += 1
        self.codec = codec
        keyframe = is_keyframe(codec, frame.data)
        if keyframe and self.kind == "video":
            self.keyframes += 1
        for relay in tuple(self._relays):
            relay._push_encoded(self, codec, frame, keyframe)
        if self.taps:  # after the relays: a recorder must not delay the other party
            encoded = EncodedFrame(
                payload=bytes(frame.data),
                timestamp=frame.timestamp,
                keyframe=keyframe,
                codec=codec.mimeType,
                clock_rate=codec.clockRate,
                track_id=self.track_id,
            )
            for tap in tuple(self.taps):
                tap._push(encoded)
        return keyframe

    def request_keyframe(self, *, force: bool = False) -> bool:
        """Send a PLI upstream (at most one per ``KEYFRAME_REQUEST_INTERVAL`` unless forced)."""
        if self.kind != "video" or self._stopped:
            return False
        now = time.monotonic()
        if not force and now - self._last_request < KEYFRAME_REQUEST_INTERVAL:
            return False
        ssrc = _media_ssrc(self.receiver)
        if ssrc is None:
            return False
        self._last_request = now
        self.keyframe_requests += 1
        task = asyncio.create_task(self.receiver._send_rtcp_pli(ssrc), name=f"pli {self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        logger.debug("source %s: keyframe requested (ssrc %d)", self.name, ssrc)
        return True

    async def stop(self) -> None:
        """Detach every relay and end pending PLI sends. Idempotent."""
        self._stopped = True
        for relay in tuple(self._relays):
            relay.attach_encoded(None)
        for tap in tuple(self.taps):
            tap.attach(None)
        for task in tuple(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class RelayTrack(MediaStreamTrack):
    """The outgoing track of one leg: encoded packets from the other leg, or decoded frames.

    Its mode follows the codecs: ``encoded`` when the source's codec is the one negotiated for
    this sender and relayable, else ``transcode`` (decoded frames from the fan-out, which the
    sender encodes). Packets get timestamps that never go back, across sources; video starts,
    and restarts after an overflow, at a keyframe.
    """

    def __init__(
        self,
        kind: str,
        *,
        name: str,
        on_mode: Callable[[RelayTrack, RelayMode], None] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.name = name
        self.send_codec: RTCRtpCodecParameters | None = None
        self.mode: RelayMode | None = None
        self.packets_relayed = 0
        self.frames_dropped = 0
        self.keyframe_requests_forwarded = 0
        self._on_mode = on_mode
        self._wake = asyncio.Event()
        self._packets: collections.deque[av.Packet] = collections.deque()
        self._frame: Frame | None = None
        self._decoded: TrackFanout | None = None
        self._encoded: EncodedSource | None = None
        self._need_keyframe = True
        self._decided: tuple[int, str, str] | None = None
        # Outgoing timeline: source timestamp + offset, strictly increasing.
        self._offset: int | None = None
        self._last_ts: int | None = None
        self._last_wall = 0.0

    # -------------------------------------------------------------- sources

    def attach(self, source: TrackFanout | None) -> None:
        """Take decoded frames (transcode mode) from ``source`` from now on."""
        if self._decoded is source:
            return
        if self._decoded is not None:
            self._decoded._subscribers.discard(self)
        self._decoded = source
        if source is not None and self.readyState == "live":
            source._subscribers.add(self)

    def attach_encoded(self, source: EncodedSource | None) -> None:
        """Take encoded frames from ``source`` from now on (None: from nobody)."""
        if self._encoded is source:
            return
        if self._encoded is not None:
            self._encoded._relays.discard(self)
        self._encoded = source
        self._offset = None
        self._need_keyframe = True
        self._packets.clear()
        if source is not None and self.readyState == "live":
            source._relays.add(self)
            source.request_keyframe(force=True)

    @property
    def encoded_source(self) -> EncodedSource | None:
        return self._encoded

    def keyframe_requested(self) -> None:
        """The far end asked this sender for a keyframe (PLI/FIR): pass it upstream."""
        source = self._encoded
        if self.mode == "encoded" and source is not None and source.request_keyframe():
            self.keyframe_requests_forwarded += 1

    def _decide(self, source: EncodedSource, codec: RTCRtpCodecParameters) -> None:
        send = self.send_codec
        key = (id(source), _format_key(codec), "" if send is None else _format_key(send))
        if self._decided == key:
            return
        self._decided = key
        same = send is not None and same_format(codec, send)
        mode: RelayMode = "encoded" if same and codec_key(codec) in RELAYABLE else "transcode"
        if mode != self.mode:
            logger.info(
                "relay %s: %s (%s -> %s)",
                self.name,
                mode,
                codec.mimeType,
                send.mimeType if send else "?",
            )
            self.mode = mode
            self._packets.clear()
            self._frame = None
            self._need_keyframe = True
            if self._on_mode is not None:
                self._on_mode(self, mode)

    def _push_encoded(
        self, source: EncodedSource, codec: RTCRtpCodecParameters, frame: JitterFrame, key: bool
    ) -> None:
        if source is not self._encoded or self.readyState != "live":
            return
        self._decide(source, codec)
        if self.mode != "encoded":
            return
        if self._need_keyframe:
            if not key:
                self.frames_dropped += 1
                source.request_keyframe()
                return
            self._need_keyframe = False
        if len(self._packets) >= MAX_QUEUED.get(self.kind, 50):
            # The sender fell behind: drop the backlog (latency over completeness); for video
            # that breaks references, so restart at a keyframe.
            self.frames_dropped += len(self._packets)
            self._packets.clear()
            if self.kind == "video":
                self._need_keyframe = True
                source.request_keyframe()
                return
        packet = av.Packet(frame.data)
        packet.pts = self._timestamp(frame.timestamp, codec.clockRate)
        packet.time_base = Fraction(1, codec.clockRate)
        self._packets.append(packet)
        self._wake.set()

    def _timestamp(self, source_ts: int, clock_rate: int) -> int:
        now = time.monotonic()
        if self._offset is None:  # a new source: continue from the last packet sent
            start = 0
            if self._last_ts is not None:
                start = self._last_ts + max(1, int((now - self._last_wall) * clock_rate))
            self._offset = start - source_ts
        ts = source_ts + self._offset
        if self._last_ts is not None and ts <= self._last_ts:
            ts = self._last_ts + 1  # a receiver splits frames on timestamp changes
            self._offset = ts - source_ts
        self._last_ts, self._last_wall = ts, now
        return ts

    def _push(self, frame: Frame) -> None:
        """A decoded frame from the fan-out: kept (latest only) while transcoding."""
        if self.mode != "transcode":
            return
        if self._frame is not None:
            self.frames_dropped += 1
        self._frame = frame
        self._wake.set()

    # -------------------------------------------------------------- track

    async def recv(self) -> Frame | av.Packet:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self.mode == "encoded" and self._packets:
                self.packets_relayed += 1
                return self._packets.popleft()
            if self.mode == "transcode" and self._frame is not None:
                frame, self._frame = self._frame, None
                return frame
            self._wake.clear()
            await self._wake.wait()

    def stop(self) -> None:
        """Detach from both sources and end: a pending ``recv`` raises. Idempotent."""
        if self.readyState == "live":
            self.attach(None)
            self.attach_encoded(None)
            super().stop()
            self._packets.clear()
            self._frame = None
            self._wake.set()


class PacketEncoder(Encoder):
    """Preset as a sender's encoder: packs relayed packets; encodes decoded frames if any."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.codec = codec
        self.real: Encoder | None = None  # created only when a decoded frame must be sent
        self._picture_id = random.randint(0, (1 << 15) - 1)
        self._target_bitrate: int | None = None

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        if self.real is None:
            self.real = get_encoder(self.codec)
            if self._target_bitrate is not None and hasattr(self.real, "target_bitrate"):
                self.real.target_bitrate = self._target_bitrate
        return self.real.encode(frame, force_keyframe)

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        # The relay stamps packets in this codec's clock: no time base conversion.
        timestamp = int(packet.pts or 0)
        key = codec_key(self.codec)
        if key == "video/vp8":
            payloads = Vp8Encoder._packetize(bytes(packet), self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
            return payloads, timestamp
        if key == "video/h264":
            # Annex B -> NAL units -> single NAL / STAP-A / FU-A payloads (packetization-mode 1).
            return H264Encoder._packetize(H264Encoder._split_bitstream(bytes(packet))), timestamp
        return [bytes(packet)], timestamp

    @property
    def target_bitrate(self) -> int | None:
        """REMB from the far end: applies to a real encoder only (relayed media keeps its rate)."""
        return self._target_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self._target_bitrate = bitrate
        if self.real is not None and hasattr(self.real, "target_bitrate"):
            self.real.target_bitrate = bitrate


def send_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the transceiver's sender will use (known once the offer is applied)."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    return codecs[0] if codecs else None


def install_sender_hooks(transceiver: RTCRtpTransceiver, relay: RelayTrack) -> None:
    """Preset the sender's encoder and forward its keyframe requests to ``relay``. Once."""
    sender = transceiver.sender
    codec = send_codec(transceiver)
    if codec is None:
        raise ValueError("transceiver has no negotiated codec yet")
    relay.send_codec = codec
    if not hasattr(sender, _SENDER_ENCODER):
        raise AiortcMismatch(f"RTCRtpSender has no {_SENDER_ENCODER}; review relay.py")
    if getattr(sender, _SENDER_ENCODER) is not None:
        raise RuntimeError("sender already has an encoder: hooks must precede its first frame")
    setattr(sender, _SENDER_ENCODER, PacketEncoder(codec))
    original = sender._send_keyframe

    def send_keyframe() -> None:
        original()  # a real encoder (transcode mode) honours it
        relay.keyframe_requested()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]
