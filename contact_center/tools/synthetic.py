"""Synthetic media and a scripted aiortc client, for tests, benchmarks and ``simulate``.

The video track paints, into 16-pixel blocks along the top of each frame, a frame counter and the
wall-clock time in milliseconds at which the frame was handed to the encoder; ``read_stamp``
reads them back after VP8 (blocks are macroblock-aligned black/white, thresholded at mid-grey,
and checked by a CRC byte). The rest of the picture is a block texture scrolling under a moving
bar: the encoder works on every frame, though less than a real camera's noise would make it.
"""

from __future__ import annotations

import array
import asyncio
import functools
import logging
import math
import random
import time
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import av
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from contact_center.media.fanout import cancel_and_wait
from contact_center.media.ice import IceSettings, restricted_gathering, rtc_configuration

logger = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
STAMP_COLUMNS = 40  # cells per row: 16 px wide at 640
COUNTER_BITS, TIME_BITS, CHECK_BITS = 32, 40, 8
STAMP_BITS = COUNTER_BITS + TIME_BITS + CHECK_BITS
BLACK, WHITE, GREY = 16, 235, 128


def now_ms() -> int:
    """Wall-clock milliseconds, as painted into frames (sender and receiver share a clock)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Stamp:
    counter: int
    sent_ms: int


def _check_byte(counter: int, sent_ms: int) -> int:
    return zlib.crc32(counter.to_bytes(4, "big") + sent_ms.to_bytes(5, "big")) & 0xFF


def _stamp_bits(counter: int, sent_ms: int) -> list[int]:
    counter &= (1 << COUNTER_BITS) - 1
    sent_ms &= (1 << TIME_BITS) - 1
    value = (counter << (TIME_BITS + CHECK_BITS)) | (sent_ms << CHECK_BITS)
    value |= _check_byte(counter, sent_ms)
    return [(value >> (STAMP_BITS - 1 - i)) & 1 for i in range(STAMP_BITS)]


def read_stamp(frame: object) -> Stamp | None:
    """The counter and send time painted by ``PaintedVideoTrack``, or None if unreadable."""
    if not isinstance(frame, av.VideoFrame):
        return None
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    pixels = memoryview(plane)
    stride = plane.line_size
    cell = frame.width // STAMP_COLUMNS
    if cell < 4 or frame.height < cell * math.ceil(STAMP_BITS / STAMP_COLUMNS):
        return None
    value = 0
    for i in range(STAMP_BITS):
        y = (i // STAMP_COLUMNS) * cell + cell // 2
        x = (i % STAMP_COLUMNS) * cell + cell // 2
        level = (
            pixels[y * stride + x - 1]
            + pixels[y * stride + x]
            + pixels[(y - 1) * stride + x - 1]
            + pixels[(y - 1) * stride + x]
        )
        if 4 * (BLACK + 40) < level < 4 * (WHITE - 40):
            return None  # neither black nor white: not a stamp (or a badly damaged one)
        value = (value << 1) | (level > 4 * GREY)
    check = value & 0xFF
    sent_ms = (value >> CHECK_BITS) & ((1 << TIME_BITS) - 1)
    counter = value >> (TIME_BITS + CHECK_BITS)
    if _check_byte(counter, sent_ms) != check:
        return None
    return Stamp(counter=counter, sent_ms=sent_ms)


def quantile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` (0..1) quantile of ``values`` by nearest rank, or None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def latency_ms(stamp: Stamp, received_ms: int | None = None) -> int:
    """Milliseconds from painting to ``received_ms`` (default now), modulo the 40-bit clock."""
    span = 1 << TIME_BITS
    delta = ((now_ms() if received_ms is None else received_ms) - stamp.sent_ms) % span
    return delta - span if delta >= span // 2 else delta


class _Pacer:
    """Wall-clock pacing; when more than a frame late it skips ahead instead of bursting."""

    def __init__(self, rate: int, step: int) -> None:
        self.rate, self.step = rate, step
        self.pts = -step
        self.skipped = 0
        self._start: float | None = None

    async def next_pts(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
            self.pts = 0
            return 0
        self.pts += self.step
        wait = self._start + self.pts / self.rate - time.monotonic()
        if wait < -self.step / self.rate:
            late_steps = int(-wait * self.rate / self.step)
            self.pts += late_steps * self.step
            self.skipped += late_steps
            wait += late_steps * self.step / self.rate
        if wait > 0:
            await asyncio.sleep(wait)
        return self.pts


@functools.lru_cache(maxsize=4)
def _backgrounds(width: int, height: int, stride: int, count: int) -> tuple[bytes, ...]:
    """``count`` luma planes: a block texture scrolling 2 px a frame under a moving bar.

    Shared by every track of the same size. The scrolling texture makes the encoder search
    motion and code residuals on most of the picture, roughly like a camera (without its noise).
    """
    rng = random.Random(7)  # test content, not security: a fixed, reproducible texture
    span = width + 2 * count
    texture_rows = [
        b"".join(bytes([rng.randrange(40, 200)]) * 8 for _ in range(span // 8 + 1))
        for _ in range(height // 8 + 1)
    ]
    planes = []
    for index in range(count):
        bar_x = index * (width - 64) // count
        plane = bytearray()
        for y in range(height):
            row = bytearray(texture_rows[y // 8][2 * index : 2 * index + width])
            row[bar_x : bar_x + 64] = bytes([220]) * 64
            plane += row + bytes(stride - width)
        planes.append(bytes(plane))
    return tuple(planes)


class PaintedVideoTrack(MediaStreamTrack):
    """Video frames carrying a counter and their send time, paced at ``fps``."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30) -> None:
        super().__init__()
        if width // STAMP_COLUMNS < 8:
            raise ValueError("width must be at least 320 pixels")
        self.width, self.height, self.fps = width, height, fps
        self.counter = 0
        self._pacer = _Pacer(VIDEO_CLOCK, VIDEO_CLOCK // fps)
        probe = av.VideoFrame(width, height, "yuv420p")
        self._stride = probe.planes[0].line_size
        self._chroma = bytes([GREY]) * probe.planes[1].buffer_size
        self._backgrounds = _backgrounds(width, height, self._stride, fps)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pacer.next_pts()
        self.counter += 1
        luma = bytearray(self._backgrounds[self.counter % self.fps])
        cell = self.width // STAMP_COLUMNS
        bits = _stamp_bits(self.counter, now_ms())
        for start in range(0, STAMP_BITS, STAMP_COLUMNS):
            row = bytearray([GREY]) * self._stride
            for col, bit in enumerate(bits[start : start + STAMP_COLUMNS]):
                row[col * cell : (col + 1) * cell] = bytes([WHITE if bit else BLACK]) * cell
            top = (start // STAMP_COLUMNS) * cell
            for y in range(top, top + cell):
                luma[y * self._stride : (y + 1) * self._stride] = row
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = pts
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A 440 Hz tone, 48 kHz mono s16, in 20 ms frames."""

    kind = "audio"
    SAMPLES = AUDIO_RATE // 50

    def __init__(self, frequency: int = 440) -> None:
        super().__init__()
        self._pacer = _Pacer(AUDIO_RATE, self.SAMPLES)
        # One second holds a whole number of periods for an integer frequency: loop it.
        second = array.array(
            "h",
            (
                int(8000 * math.sin(2 * math.pi * frequency * n / AUDIO_RATE))
                for n in range(AUDIO_RATE)
            ),
        )
        self._second = second.tobytes()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pacer.next_pts()
        offset = (pts % AUDIO_RATE) * 2
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(self._second[offset : offset + self.SAMPLES * 2])
        frame.sample_rate = AUDIO_RATE
        frame.pts = pts
        frame.time_base = Fraction(1, AUDIO_RATE)
        return frame


@dataclass
class ReceiveStats:
    """What a synthetic peer received; times are ``time.monotonic()`` seconds."""

    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    stamped: int = 0
    unreadable: int = 0
    out_of_order: int = 0
    missing: int = 0
    last_counter: int | None = None
    counters: deque[int] = field(default_factory=lambda: deque(maxlen=10_000))
    arrivals: dict[str, deque[float]] = field(
        default_factory=lambda: {k: deque(maxlen=100_000) for k in ("audio", "video")}
    )
    latencies: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=100_000))

    def record(self, kind: str, frame: av.AudioFrame | av.VideoFrame) -> None:
        arrived = time.monotonic()
        self.frames[kind] = self.frames.get(kind, 0) + 1
        self.arrivals.setdefault(kind, deque(maxlen=100_000)).append(arrived)
        if kind != "video":
            return
        stamp = read_stamp(frame)
        if stamp is None:
            self.unreadable += 1
            return
        self.stamped += 1
        self.latencies.append((arrived, latency_ms(stamp)))
        self.counters.append(stamp.counter)
        if self.last_counter is not None:
            if stamp.counter <= self.last_counter:
                self.out_of_order += 1
                return
            self.missing += stamp.counter - self.last_counter - 1
        self.last_counter = stamp.counter

    def fps(self, kind: str = "video", since: float | None = None) -> float:
        """Frames per second received since ``since`` (default: since the first frame)."""
        arrivals = self.arrivals.get(kind, deque())
        if not arrivals:
            return 0.0
        start = arrivals[0] if since is None else since
        count = sum(1 for t in arrivals if t >= start)
        elapsed = time.monotonic() - start
        return count / elapsed if elapsed > 0 else 0.0

    def latency_ms(self, q: float, since: float | None = None) -> float | None:
        """The ``q`` (0..1) quantile of end-to-end video latency, or None without samples."""
        return quantile((ms for t, ms in self.latencies if since is None or t >= since), q)


class LoopbackPeer:
    """An aiortc client that always offers, with ICE as ``ice`` allows (loopback in tests)."""

    def __init__(self, ice: IceSettings, *, name: str) -> None:
        self.ice = ice
        self.name = name
        self.pc = RTCPeerConnection(configuration=rtc_configuration(ice))

    async def offer(self) -> str:
        """Create and apply an offer; returns its SDP with every candidate in it."""
        with restricted_gathering(self.ice):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def wait_connected(self) -> None:
        """Wait until the peer connection is ``connected`` (bound it with ``asyncio.timeout``)."""
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed"):
                raise ConnectionError(f"{self.name}: connection {self.pc.connectionState}")
            await asyncio.sleep(0.02)


class SyntheticPeer(LoopbackPeer):
    """An aiortc client that offers sendrecv audio/video and consumes everything it receives."""

    def __init__(
        self,
        ice: IceSettings,
        *,
        video: bool = True,
        audio: bool = True,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        name: str = "peer",
    ) -> None:
        super().__init__(ice, name=name)
        self.stats = ReceiveStats()
        self.video_track: PaintedVideoTrack | None = None
        self.audio_track: ToneAudioTrack | None = None
        self._video_size = (width, height, fps)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.pc.on("track", self._on_track)
        if audio:
            self.add_audio()
        if video:
            self.add_video()

    def add_audio(self) -> RTCRtpTransceiver:
        """Add a sendrecv tone transceiver (call ``offer`` again to renegotiate)."""
        if self.audio_track is not None:
            raise RuntimeError(f"{self.name} already sends audio")
        self.audio_track = ToneAudioTrack()
        return self.pc.addTransceiver(self.audio_track, direction="sendrecv")

    def add_video(self) -> RTCRtpTransceiver:
        """Add a sendrecv painted-video transceiver (call ``offer`` again to renegotiate)."""
        if self.video_track is not None:
            raise RuntimeError(f"{self.name} already sends video")
        self.video_track = PaintedVideoTrack(*self._video_size)
        return self.pc.addTransceiver(self.video_track, direction="sendrecv")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self._closed:
            return
        task = asyncio.create_task(self._consume(track), name=f"{self.name} consume {track.kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume(self, track: MediaStreamTrack) -> None:
        logger.debug("%s: receiving %s", self.name, track.kind)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            self.stats.record(track.kind, frame)  # type: ignore[arg-type]
        logger.debug("%s: %s ended", self.name, track.kind)

    async def close(self) -> None:
        """Close the peer connection and end every consumer task. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.pc.close()
        for track in (self.video_track, self.audio_track):
            if track is not None:
                track.stop()
        for task in list(self._tasks):
            await cancel_and_wait(task)
        logger.debug("%s: closed", self.name)
