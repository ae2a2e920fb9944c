"""TrackWriter: encoded frames in, a playable container out (no codec context on the stream)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from contact_center.media.encoded import EncodedFrame, EncodedTap
from recordings.bitstream import vp8_dimensions
from recordings.mux import (
    TrackWriter,
    UnsupportedCodec,
    WriterClosed,
    suffix_for,
)


def encode_video(codec: str, count: int, width: int = 320, height: int = 240) -> list[bytes]:
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"  # type: ignore[attr-defined]
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"tune": "zerolatency"} if codec == "libx264" else {"deadline": "realtime"}
    payloads = []
    for index in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        frame.pts = index
        payloads += [bytes(p) for p in encoder.encode(frame)]  # type: ignore[attr-defined]
    payloads += [bytes(p) for p in encoder.encode(None)]  # type: ignore[attr-defined]
    return payloads


def encode_opus(count: int) -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "stereo", "s16"  # type: ignore[attr-defined]
    payloads = []
    for index in range(count):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.sample_rate, frame.pts = 48000, index * 960
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        payloads += [bytes(p) for p in encoder.encode(frame)]  # type: ignore[attr-defined]
    return payloads


def decoded(path: Path) -> list[av.VideoFrame | av.AudioFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(container.streams[0]))  # type: ignore[arg-type]


def test_vp8_starts_at_a_keyframe_with_monotonic_times(tmp_path: Path) -> None:
    payloads = encode_video("libvpx", 30)
    assert vp8_dimensions(payloads[0]) == (320, 240) and vp8_dimensions(payloads[1]) is None
    writer = TrackWriter(tmp_path / "v.webm", "video", "video/VP8", 90000)
    assert not writer.write(payloads[1], 1_000_000, keyframe=False)  # no keyframe yet: skipped
    start = 2**32 + 5  # aiortc unwraps RTP timestamps: they may exceed 32 bits
    for index, payload in enumerate(payloads):
        # The 10th frame repeats the 9th's timestamp: the writer moves it 1 ms on.
        ts = start + 3000 * (index if index != 10 else 9)
        assert writer.write(payload, ts, keyframe=not payload[0] & 1)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(WriterClosed):
        writer.write(payloads[0], start, keyframe=True)
    assert writer.skipped == 1 and writer.frames_written == 30 and writer.error is None
    frames = decoded(tmp_path / "v.webm")
    assert len(frames) == 30 and frames[0].width == 320
    times = [round(float(f.time or 0) * 1000) for f in frames]
    assert times[:3] == [0, 33, 67] and times[10] == times[9] + 1
    assert times == sorted(set(times)) and times[-1] == 967


def test_opus_goes_to_webm_at_48_khz(tmp_path: Path) -> None:
    writer = TrackWriter(tmp_path / "a.webm", "audio", "audio/opus", 48000)
    for index, payload in enumerate(encode_opus(50)):
        writer.write(payload, 960 * index, keyframe=True)
    writer.close()
    frames = decoded(tmp_path / "a.webm")
    assert len(frames) == 50 and frames[0].sample_rate == 48000
    with av.open(str(tmp_path / "a.webm")) as container:
        assert container.duration is not None and abs(container.duration / 1e6 - 1.0) < 0.05
        assert container.streams[0].codec_context.name == "opus"


def test_h264_goes_to_matroska_with_a_given_size(tmp_path: Path) -> None:
    assert suffix_for("video/H264") == ".mkv" and suffix_for("audio/opus") == ".webm"
    writer = TrackWriter(tmp_path / "h.mkv", "video", "video/H264", 90000, width=320, height=240)
    for index, payload in enumerate(encode_video("libx264", 20)):
        writer.write(payload, 3000 * index, keyframe=index == 0)
    writer.close()
    assert len(decoded(tmp_path / "h.mkv")) == 20


def test_unknown_codecs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedCodec):
        TrackWriter(tmp_path / "x.webm", "audio", "audio/PCMU", 8000)
    with pytest.raises(UnsupportedCodec):
        suffix_for("video/AV1X")


def frame(keyframe: bool, ts: int) -> EncodedFrame:
    return EncodedFrame(b"x", ts, keyframe, "video/VP8", 90000, "t")


async def test_encoded_tap_is_bounded() -> None:
    audio = EncodedTap("audio", name="a", max_queued=3)
    for ts in range(5):
        audio._push(EncodedFrame(b"o", ts, True, "audio/opus", 48000, "t"))
    assert audio.dropped == 2 and [(await audio.recv()).timestamp for _ in range(3)] == [2, 3, 4]
    video = EncodedTap("video", name="v", max_queued=3)
    video._push(frame(False, 0))  # before any keyframe: not queued
    for ts, key in ((1, True), (2, False), (3, False), (4, False), (5, False), (6, True)):
        video._push(frame(key, ts))
    # Full at ts 4: the backlog is dropped and the tap waits for the keyframe at ts 6.
    assert video.dropped == 4 and video.received == 4
    assert (await video.recv()).timestamp == 6
    video.stop()
    assert [f async for f in video] == []
