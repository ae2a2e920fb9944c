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


def codec_name(codec: str) -> str:
    """``"video/VP8"`` or ``"VP8"`` -> ``"vp8"``."""
    return codec.rsplit("/", 1)[-1].lower()


def suffix_for(codec: str) -> str:
    """The file suffix for a codec (``.webm`` for VP8/Opus, ``.mkv`` for H.264)."""
    try:
        return CONTAINERS[codec_name(codec)][2]
    except KeyError:
        raise UnsupportedCodec(f"cannot record {codec!r} without transcoding") from None


def vp8_dimensions(payload: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header (RFC 6386 9.1), None for other frames."""
    if len(payload) < 10 or payload[0] & 0x01 or payload[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(payload[6:8], "little") & 0x3FFF
    height = int.from_bytes(payload[8:10], "little") & 0x3FFF
    return width, height


class _BitReader:
    """MSB-first bits of an RBSP, with the exp-Golomb codes of H.264 (ITU-T H.264 9.1)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0  # in bits

    def u(self, bits: int) -> int:
        value = 0
        for _ in range(bits):
            byte = self._pos >> 3
            if byte >= len(self._data):
                raise ValueError("SPS is truncated")
            value = (value << 1) | ((self._data[byte] >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code in SPS")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _nal_units(payload: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01)."""
    units: list[bytes] = []
    start = payload.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        start = payload.find(b"\x00\x00\x01", begin)
        end = len(payload) if start < 0 else start
        units.append(payload[begin:end].rstrip(b"\x00"))  # a 4-byte start code's first 0
    return [unit for unit in units if unit]


# profile_idc values whose SPS carries chroma format, bit depths and scaling lists (7.3.2.1.1)
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def h264_sps_dimensions(sps: bytes) -> tuple[int, int]:
    """Cropped width and height from one SPS NAL unit (header byte included)."""
    if not sps or sps[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    # Drop emulation prevention bytes: 00 00 03 -> 00 00.
    rbsp = bytearray()
    zeros = 0
    for byte in sps[1:]:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        rbsp.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    bits = _BitReader(bytes(rbsp))
    profile_idc = bits.u(8)
    bits.u(16)  # constraint_set flags, reserved bits, level_idc
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc, separate_colour_plane = 1, 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            separate_colour_plane = bits.u(1)
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if bits.u(1):  # seq_scaling_list_present_flag: skip the list (7.3.2.1.1.1)
                    last = following = 8
                    for _ in range(16 if index < 6 else 64):
                        if following:
                            following = (last + bits.se() + 256) % 256
                        last = following or last
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.u(1)  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        for _ in range(bits.ue()):  # num_ref_frames_in_pic_order_cnt_cycle
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_map_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if bits.u(1):  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
        if chroma_array_type == 0:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            sub_width = 1 if chroma_array_type == 3 else 2
            sub_height = 2 if chroma_array_type == 1 else 1
            unit_x, unit_y = sub_width, sub_height * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise ValueError(f"bad SPS frame size {width}x{height}")
    return width, height


def h264_dimensions(payload: bytes) -> tuple[int, int] | None:
    """Width and height from the first SPS of an Annex B frame, None without a (valid) SPS."""
    for unit in _nal_units(payload):
        if unit[0] & 0x1F == 7:
            try:
                return h264_sps_dimensions(unit)
            except ValueError:
                logger.warning("unparsable H.264 SPS %s", unit[:16].hex())
                return None
    return None


def frame_dimensions(codec: str, payload: bytes) -> tuple[int, int] | None:
    """Width and height a VP8 key frame or an H.264 frame with an SPS carries, else None."""
    name = codec_name(codec)
    if name == "vp8":
        return vp8_dimensions(payload)
    if name == "h264":
        return h264_dimensions(payload)
    return None


def is_keyframe(codec: str, payload: bytes) -> bool:
    """True where a decoder can start: audio, VP8 key frames, H.264 IDR/SPS (Annex B)."""
    name = codec_name(codec)
    if name == "vp8":
        return bool(payload) and not payload[0] & 0x01
    if name == "h264":
        start = payload.find(b"\x00\x00\x01")
        while 0 <= start < len(payload) - 3:
            if payload[start + 3] & 0x1F in (5, 7):
                return True
            start = payload.find(b"\x00\x00\x01", start + 3)
        return False
    return True


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
