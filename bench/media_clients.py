"""Light bench clients: send a pre-encoded VP8/Opus clip, count received frames without decoding.

``SyntheticPeer`` paints, encodes and decodes 640x480 video in the bench process; at 4 calls
that saturates a 2-vCPU machine before the server does. ``ClipPeer`` instead sends a clip
encoded once at bench start (``make_clip``: ``PaintedVideoTrack`` frames in VP8 plus a tone in
Opus, WebM) through aiortc's ``MediaPlayer(path, decode=False)``, so its sender only packetizes,
and counts what it receives as encoded frames, never decoding them.

Receive side: ``contact_center.media.relay.receive_undecoded`` (the one module that holds
aiortc's private hooks) hands each assembled frame to ``KindStats.add`` instead of the decoder,
which records it (arrival time, RTP timestamp, keyframe flag) and drops it; the receiver's
decoder thread never gets a frame and never creates a decoder. The painted counters therefore cannot
be read (that needs decoding): latency is not measured, only arrival timing.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc import RTCRtpSender
from aiortc.contrib.media import MediaPlayer
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from contact_center.media.ice import IceSettings
from contact_center.media.relay import is_keyframe, receive_undecoded
from contact_center.tools.synthetic import (
    AUDIO_RATE,
    VIDEO_CLOCK,
    LoopbackPeer,
    PaintedVideoTrack,
    quantile,
)

logger = logging.getLogger("bench.media_clients")

CLIP_FPS = 30
CLIP_KEYFRAME_INTERVAL = 30  # frames: the encoded relay starts (and restarts) at a keyframe
CLIP_BITRATE = 1_000_000  # about what aiortc's own VP8 encoder settles at for this picture


# ---------------------------------------------------------------------- the clip


async def make_clip(path: Path, seconds: float, *, width: int = 640, height: int = 480) -> Path:
    """Encode ``seconds`` of painted 30 fps VP8 video plus a 440 Hz Opus tone into WebM ``path``.

    Frames come from ``PaintedVideoTrack`` (counter and send time painted in, scrolling texture),
    produced as fast as the encoder takes them instead of in real time. Blocks the event loop
    while it encodes (a few seconds, once, before any call starts).
    """
    track = PaintedVideoTrack(width, height, CLIP_FPS)
    frames = math.ceil(seconds * CLIP_FPS)
    with av.open(str(path), mode="w", format="webm") as container:
        video = container.add_stream("libvpx", rate=CLIP_FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = CLIP_BITRATE
        video.gop_size = CLIP_KEYFRAME_INTERVAL
        video.codec_context.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
        }
        audio = container.add_stream("libopus", rate=AUDIO_RATE)
        audio.layout = "mono"
        audio.bit_rate = 32_000
        samples = AUDIO_RATE // 50
        tone = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * n / AUDIO_RATE)).to_bytes(
                2, "little", signed=True
            )
            for n in range(AUDIO_RATE)
        )
        tone += tone  # a chunk may wrap past the end of the second
        chunks = 0
        for index in range(frames):
            # PaintedVideoTrack paces recv() in real time; paint its frame directly instead.
            frame = await _painted_frame(track)
            frame.pts, frame.time_base = index, Fraction(1, CLIP_FPS)
            container.mux(video.encode(frame))
            # Interleave audio with video: MediaPlayer reads the file in order, 1 s ahead.
            while chunks * samples <= (index + 1) * AUDIO_RATE // CLIP_FPS:
                offset = (chunks * samples % AUDIO_RATE) * 2
                chunk = av.AudioFrame(format="s16", layout="mono", samples=samples)
                chunk.planes[0].update(tone[offset : offset + samples * 2])
                chunk.sample_rate, chunk.pts = AUDIO_RATE, chunks * samples
                chunk.time_base = Fraction(1, AUDIO_RATE)
                container.mux(audio.encode(chunk))
                chunks += 1
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


async def _painted_frame(track: PaintedVideoTrack) -> av.VideoFrame:
    track._pacer.pts = -track._pacer.step  # our own track's pacer: start over, never wait
    track._pacer._start = None
    return await track.recv()


# ---------------------------------------------------------------------- receive side


@dataclass
class KindStats:
    """Encoded frames received on one kind: arrival ``time.monotonic()`` and RTP seconds."""

    clock_rate: int
    arrivals: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=200_000))
    keyframes: int = 0
    bytes: int = 0

    def add(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        self.arrivals.append((time.monotonic(), frame.timestamp / codec.clockRate))
        self.bytes += len(frame.data)
        if is_keyframe(codec, frame.data) and codec.mimeType.lower().startswith("video/"):
            self.keyframes += 1

    def window(self, start: float, end: float) -> list[tuple[float, float]]:
        return [(t, rtp) for t, rtp in self.arrivals if start <= t <= end]


def _only(kind: str, mime: str) -> list[Any]:
    """``kind``'s sender capabilities restricted to ``mime`` (and RTX): the clip's codec."""
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in codecs if c.mimeType.lower() in (mime, f"{kind}/rtx")]


class ClipPeer(LoopbackPeer):
    """An aiortc client sending the clip as is (VP8 + Opus only) and counting what it receives."""

    def __init__(self, ice: IceSettings, clip: Path, *, name: str) -> None:
        super().__init__(ice, name=name)
        self.player = MediaPlayer(str(clip), decode=False)
        self.received = {"video": KindStats(VIDEO_CLOCK), "audio": KindStats(AUDIO_RATE)}
        self.pc.on("track", self._on_track)
        for kind, track, mime in (
            ("audio", self.player.audio, "audio/opus"),
            ("video", self.player.video, "video/vp8"),
        ):
            if track is None:
                raise ValueError(f"clip {clip} has no {kind} stream aiortc can send undecoded")
            transceiver = self.pc.addTransceiver(track, direction="sendrecv")
            transceiver.setCodecPreferences(_only(kind, mime))

    def _on_track(self, track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        receive_undecoded(receiver, self.received[track.kind].add)

    async def close(self) -> None:
        """Close the peer connection and stop the player's thread. Idempotent."""
        await self.pc.close()
        for track in (self.player.audio, self.player.video):
            if track is not None:
                track.stop()


# ---------------------------------------------------------------------- figures


def video_figures(peers: list[ClipPeer], start: float, end: float) -> dict[str, Any]:
    """Received video over [start, end]: min/mean fps, frame interval and delay variation.

    Delay variation: per receiver, arrival time minus RTP time, less its minimum in the window
    (the relay keeps a constant timestamp offset per source); queueing added above the best
    frame, not end-to-end latency.
    """
    span = max(1e-6, end - start)
    fps, intervals, variation = [], [], []
    for peer in peers:
        frames = peer.received["video"].window(start, end)
        fps.append(len(frames) / span)
        intervals += [(b[0] - a[0]) * 1000 for a, b in zip(frames, frames[1:], strict=False)]
        if frames:
            delays = [t - rtp for t, rtp in frames]
            best = min(delays)
            variation += [(d - best) * 1000 for d in delays]
    rounded = {k: quantile(v, q) for k, v, q in (
        ("interval_p50_ms", intervals, 0.5),
        ("interval_p99_ms", intervals, 0.99),
        ("delay_variation_p50_ms", variation, 0.5),
        ("delay_variation_p99_ms", variation, 0.99),
    )}  # fmt: skip
    return {
        "min_fps": round(min(fps), 1) if fps else 0.0,
        "mean_fps": round(sum(fps) / len(fps), 1) if fps else 0.0,
        **{k: None if v is None else round(v, 1) for k, v in rounded.items()},
        "keyframes_received": sum(p.received["video"].keyframes for p in peers),
    }
