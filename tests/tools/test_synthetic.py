"""Synthetic media: painted stamps survive VP8; paced tracks; frame copies are independent."""

from __future__ import annotations

from fractions import Fraction

import av

from contact_center.media.fanout import copy_frame
from contact_center.tools.synthetic import (
    PaintedVideoTrack,
    Stamp,
    ToneAudioTrack,
    latency_ms,
    read_stamp,
)


def vp8_round_trip(frames: list[av.VideoFrame], bit_rate: int) -> list[av.VideoFrame]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 480, "yuv420p"
    encoder.bit_rate = bit_rate
    encoder.time_base = Fraction(1, 30)
    decoder = av.CodecContext.create("vp8", "r")
    decoded: list[av.VideoFrame] = []
    for index, frame in enumerate(frames):
        frame.pts, frame.time_base = index, Fraction(1, 30)
        for packet in encoder.encode(frame):
            decoded.extend(decoder.decode(packet))
    for packet in encoder.encode(None):
        decoded.extend(decoder.decode(packet))
    return decoded


async def test_stamps_survive_low_bitrate_vp8() -> None:
    track = PaintedVideoTrack(fps=1000)  # don't wait between frames
    frames = [await track.recv() for _ in range(30)]
    painted = [read_stamp(frame) for frame in frames]
    assert [stamp.counter for stamp in painted if stamp] == list(range(1, 31))
    decoded = vp8_round_trip(frames, bit_rate=150_000)
    read = [read_stamp(frame) for frame in decoded]
    assert read == painted


def test_unstamped_frame_reads_as_none() -> None:
    frame = av.VideoFrame(640, 480, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes([128]) * plane.buffer_size)
    assert read_stamp(frame) is None


def test_latency_wraps_with_the_40_bit_clock() -> None:
    assert latency_ms(Stamp(counter=1, sent_ms=(1 << 40) - 5), received_ms=1 << 40) == 5
    assert latency_ms(Stamp(counter=1, sent_ms=10), received_ms=(1 << 40) + 35) == 25


async def test_tone_frames_are_20_ms_of_48_khz() -> None:
    track = ToneAudioTrack()
    first, second = await track.recv(), await track.recv()
    assert (first.sample_rate, first.samples, first.format.name) == (48_000, 960, "s16")
    assert (first.pts, second.pts) == (0, 960)
    track.stop()


async def test_frame_copy_is_independent() -> None:
    frame = await PaintedVideoTrack().recv()
    copy = copy_frame(frame)
    assert read_stamp(copy) == read_stamp(frame)
    assert (copy.pts, copy.time_base) == (frame.pts, frame.time_base)
    copy.planes[0].update(bytes(copy.planes[0].buffer_size))
    assert read_stamp(frame) is not None and read_stamp(copy) is None
