"""Recording a real call on the encoded path: one playable file per inbound track, no decoder."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiortc.rtcrtpreceiver
import av
import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from contact_center.media.call import CallMedia, MediaStateError
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer, read_stamp
from tests.helpers import negotiate, wait_for

ROOT = Path(__file__).resolve().parents[2]
TRACKS = {f"{p}-{k}-1.webm" for p in ("customer", "advisor") for k in ("audio", "video")}


def probe(path: Path) -> tuple[float | None, list[int], int]:
    """(container duration in s, painted counters of decoded video, decoded frame count)."""
    with av.open(str(path)) as container:
        duration = None if container.duration is None else container.duration / 1_000_000
        stream = container.streams[0]
        counters, frames = [], 0
        for frame in container.decode(stream):
            frames += 1
            stamp = read_stamp(frame)
            if stamp is not None:
                counters.append(stamp.counter)
    return duration, counters, frames


def count_server_decoders(
    monkeypatch: pytest.MonkeyPatch, clients: list[SyntheticPeer]
) -> Counter[str]:
    """Decoders aiortc creates for queues other than the clients' receivers: the server's."""
    created: Counter[str] = Counter()
    real = aiortc.rtcrtpreceiver.get_decoder

    def get_decoder(codec: RTCRtpCodecParameters) -> Any:
        # Called by decoder_worker(loop, input_q, ...) in a receiver's decoder thread.
        input_q = sys._getframe(1).f_locals["input_q"]
        client_queues = [
            t.receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
            for peer in clients
            for t in peer.pc.getTransceivers()
        ]
        if not any(input_q is q for q in client_queues):
            created[codec.mimeType] += 1
        return real(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", get_decoder)
    return created


async def test_call_is_recorded_per_track_without_decoding(
    ice: IceSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = CallMedia("rec", ice)
    customer = SyntheticPeer(ice, name="customer")
    advisor = SyntheticPeer(ice, name="advisor")
    server_decoders = count_server_decoders(monkeypatch, [customer, advisor])
    files = call.start_recording(tmp_path)
    negotiated = time.monotonic()  # no file can begin before this
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await wait_for(lambda: len(files) == 4)
        started = time.monotonic()
        await asyncio.sleep(4)
        stamped = advisor.stats.stamped, customer.stats.stamped
        assert min(stamped) > 90  # the relay kept going while recording
        recorder = call.recorder
        assert recorder is not None
    finally:
        await call.close()
        closed = time.monotonic()
        length = closed - started  # every file spans at least this
        await customer.close()
        await advisor.close()
    assert {p.name for p in files} == TRACKS
    assert server_decoders == Counter()  # recorded as received: nothing decoded on the server
    stats = recorder.stats()
    assert all(s["error"] is None and s["dropped"] == 0 for s in stats.values()), stats
    for path in files:
        duration, counters, frames = probe(path)
        # each file starts at its track's first frame (some before the last file opened, under
        # load a second or more) and ends at the close: its media time is that real time
        span = closed - negotiated
        assert duration is not None and length - 1.0 < duration < span + 0.5, (
            path.name, duration, length, span,
        )
        if "video" in path.name:
            assert frames >= 25 * length * 0.8, (path.name, frames)
            assert len(counters) >= frames - 2  # every decoded picture shows its counter...
            assert counters == sorted(set(counters))  # ...in increasing order
        else:
            assert frames >= 50 * length * 0.8, (path.name, frames)  # 20 ms Opus packets, some slack under load


async def test_encoded_tap_and_recording_need_the_encoded_path(
    ice: IceSettings, tmp_path: Path
) -> None:
    call = CallMedia("transcoding", ice, relay="transcode")
    try:
        with pytest.raises(MediaStateError, match="encoded"):
            call.subscribe_encoded("customer", "video")
        with pytest.raises(MediaStateError, match="encoded"):
            call.start_recording(tmp_path)
    finally:
        await call.close()
    encoded = CallMedia("twice", ice)
    try:
        encoded.start_recording(tmp_path)
        with pytest.raises(MediaStateError, match="already recording"):
            encoded.start_recording(tmp_path)
    finally:
        await encoded.close()
    assert list(tmp_path.iterdir()) == []  # no track, no file


async def test_encoded_tap_starts_video_at_a_keyframe(ice: IceSettings) -> None:
    call = CallMedia("tap", ice)
    customer = SyntheticPeer(ice, name="customer")
    advisor = SyntheticPeer(ice, name="advisor")
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await wait_for(lambda: advisor.stats.stamped >= 30)
        tap = call.subscribe_encoded("customer", "video")  # mid-stream: a keyframe is requested
        async with asyncio.timeout(5):
            first = await tap.recv()
            second = await tap.recv()
        assert first.keyframe and first.codec.lower() == "video/vp8" and first.clock_rate == 90000
        assert second.timestamp > first.timestamp
        tap.stop()
        async with asyncio.timeout(1):
            rest = [frame async for frame in tap]  # what was queued, then the iteration ends
        assert tap.stopped and all(f.timestamp > second.timestamp for f in rest)
    finally:
        await call.close()
        await customer.close()
        await advisor.close()


def test_sigkill_mid_call_leaves_playable_files(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.recordings.crash_call", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "recording"  # every track has frames
        time.sleep(3)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    paths = sorted(tmp_path.iterdir())
    assert {p.name for p in paths} == TRACKS
    for path in paths:
        _, counters, frames = probe(path)
        # ~3 s were recorded; at most the open cluster (~1 s) may be lost.
        if "video" in path.name:
            assert frames >= 25 * 1.5, (path.name, frames)
            assert counters and counters == sorted(set(counters))
        else:
            assert frames >= 50 * 1.5, (path.name, frames)
