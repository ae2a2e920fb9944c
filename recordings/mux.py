"""Write one track's encoded frames into a container as they arrive: no decoding, no encoding.

``TrackWriter`` takes the payloads a WebRTC receiver assembled (VP8/H.264 frames, Opus packets)
with their RTP-clock timestamps and muxes them with PyAV as ``av.Packet``s on a stream made by
``OutputContainer.add_mux_stream`` (PyAV >= 17: a stream with codec parameters and *no* codec
context, so nothing is opened, not even an encoder). VP8/Opus go to WebM, H.264 to Matroska.
A video stream needs its frame size: read from the first VP8 key frame header, or from the
first H.264 SPS (``h264_dimensions``: a small exp-Golomb parser, no decoder).

Crash safety: Matroska keeps the open cluster in memory and writes it when the cluster ends, so
clusters end every ``CLUSTER_MS`` (``cluster_time_limit``) and every write is flushed to the file
(``flush_packets``). A SIGKILL then loses at most the open cluster (~1 s) and whatever waits in
the queue; the rest is a Matroska file without its index and duration, which FFmpeg reads (it
scans the clusters). A clean ``close`` writes the trailer: duration and cues (seekable replay).

Threading: ``write`` is called on the event loop and must not block it, so it only checks the
frame and appends it to a bounded queue; one thread per writer opens the file, muxes and closes
it (FFmpeg releases the GIL while writing). When the queue is full the frame is dropped and
counted (``dropped``); video then waits for the next keyframe, since the following frames
reference the lost one.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.container

from recordings.bitstream import codec_name, frame_dimensions, is_keyframe

logger = logging.getLogger(__name__)

Kind = Literal["audio", "video"]

CLUSTER_MS = 1000  # longest stretch a SIGKILL can lose (plus the queue)
MAX_QUEUED = 256  # frames: ~8 s of 30 fps video, ~5 s of 20 ms Opus packets
TIME_BASE = Fraction(1, 1000)  # Matroska's default timestamp scale: 1 ms

# codec name as negotiated (lower-case mime subtype) -> (FFmpeg codec, container format, suffix)
CONTAINERS: dict[str, tuple[str, str, str]] = {
    "vp8": ("vp8", "webm", ".webm"),
    "opus": ("opus", "webm", ".webm"),
    "h264": ("h264", "matroska", ".mkv"),
}


class UnsupportedCodec(ValueError):
    """A codec this writer cannot put in a container without transcoding."""


class WriterClosed(RuntimeError):
    """``write`` after ``close`` (the message names the file)."""


def suffix_for(codec: str) -> str:
    """The file suffix for a codec (``.webm`` for VP8/Opus, ``.mkv`` for H.264)."""
    try:
        return CONTAINERS[codec_name(codec)][2]
    except KeyError:
        raise UnsupportedCodec(f"cannot record {codec!r} without transcoding") from None


@dataclass(frozen=True, slots=True)
class _Item:
    payload: bytes
    pts: int  # in TIME_BASE, strictly increasing


class TrackWriter:
    """One inbound track's encoded frames -> one WebM/Matroska file, muxed on its own thread.

    ``write(payload, timestamp, keyframe)`` with ``timestamp`` in the track's RTP clock
    (``clock_rate`` Hz, unwrapped); the file's time starts at the first written frame. Video
    starts at a keyframe (earlier frames are counted in ``skipped``). ``close`` is idempotent and
    blocks until the file is complete: call it off the event loop (``asyncio.to_thread``).
    """

    def __init__(
        self,
        path: Path,
        kind: Kind,
        codec: str,
        clock_rate: int,
        *,
        width: int | None = None,
        height: int | None = None,
        metadata: dict[str, str] | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        name = codec_name(codec)
        if name not in CONTAINERS:
            raise UnsupportedCodec(f"cannot record {codec!r} without transcoding")
        if clock_rate <= 0:
            raise ValueError(f"bad clock rate {clock_rate}")
        self.path = Path(path)
        self.kind = kind
        self.codec = name
        self.clock_rate = clock_rate
        self.metadata = dict(metadata or {})
        self.frames_written = 0
        self.dropped = 0
        self.skipped = 0
        self.error: BaseException | None = None
        self._size = (width, height) if width and height else None
        self._max_queued = max_queued
        self._queue: collections.deque[_Item] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._need_keyframe = kind == "video"
        self._first_ts: int | None = None
        self._last_pts = -1
        self._thread = threading.Thread(target=self._run, name=f"rec {self.path.name}", daemon=True)
        self._thread.start()

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame accepted so far."""
        return max(0, self._last_pts) * float(TIME_BASE)

    def need_keyframe(self) -> None:
        """Video: accept nothing until the next keyframe (after a gap the writer did not see,
        such as a paused recording, later frames reference pictures the file lacks)."""
        if self.kind == "video":
            self._need_keyframe = True

    def write(self, payload: bytes, timestamp: int, keyframe: bool) -> bool:
        """Queue one encoded frame; False if it was not queued (before a keyframe, or full)."""
        if self._closing:
            raise WriterClosed(f"{self.path} is closed")
        if self.error is not None:
            self.dropped += 1
            return False
        if self._need_keyframe:
            if not keyframe:
                self.skipped += 1
                return False
            if self._size is None and self.kind == "video":
                self._size = frame_dimensions(self.codec, payload)
                if self._size is None and self.codec == "h264":
                    # An IDR without its SPS: the size (and the decoder) need the next one.
                    self.skipped += 1
                    return False
            self._need_keyframe = False
        if self._first_ts is None:
            self._first_ts = timestamp
        # RTP clock -> milliseconds from the first frame, never going back: Matroska needs
        # increasing timestamps per track, and a receiver may repeat or reorder one.
        pts = round((timestamp - self._first_ts) * 1000 / self.clock_rate)
        pts = max(pts, self._last_pts + 1)
        with self._cond:
            if len(self._queue) >= self._max_queued:
                self.dropped += 1
                if self.kind == "video":
                    self._need_keyframe = True
                return False
            self._last_pts = pts
            self._queue.append(_Item(bytes(payload), pts))
            self._cond.notify()
        return True

    def close(self) -> None:
        """Write what is queued, then the trailer; blocks until done. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        opened: tuple[av.container.OutputContainer, av.stream.Stream] | None = None
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    batch = list(self._queue)
                    self._queue.clear()
                    closing = self._closing
                for item in batch:
                    if opened is None:
                        opened = self._open()
                    container, stream = opened
                    packet = av.Packet(item.payload)
                    packet.stream = stream
                    packet.time_base = TIME_BASE
                    packet.pts = packet.dts = item.pts
                    packet.is_keyframe = is_keyframe(self.codec, item.payload)
                    container.mux(packet)
                    self.frames_written += 1
                if closing:
                    break
        except Exception as error:  # keep the event loop side alive; the file ends here
            self.error = error
            logger.exception("recording %s failed", self.path)
        finally:
            if opened is not None:
                try:
                    opened[0].close()
                except Exception as error:
                    self.error = self.error or error
                    logger.exception("recording %s: closing failed", self.path)
            logger.info(
                "recording %s: %d frames, %d dropped", self.path, self.frames_written, self.dropped
            )

    def _open(self) -> tuple[av.container.OutputContainer, av.stream.Stream]:
        ffmpeg_codec, fmt, _ = CONTAINERS[self.codec]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = {"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"}
        container = av.open(str(self.path), "w", format=fmt, options=options)
        container.metadata.update(self.metadata)
        if self.kind == "video":
            width, height = self._size or (0, 0)
            if not width or not height:
                raise UnsupportedCodec(f"{self.codec}: frame size unknown, pass width/height")
            stream = container.add_mux_stream(ffmpeg_codec, width=width, height=height)
        else:
            # Opus in Matroska is always 48 kHz; without an OpusHead the decoder assumes stereo,
            # which is what WebRTC signals (opus/48000/2).
            stream = container.add_mux_stream(ffmpeg_codec, rate=48000)
        stream.time_base = TIME_BASE
        return container, stream
