"""CPU cost of recording on the encoded path: ``python -m bench.recording``.

1. ``TrackWriter`` alone: 10 s of 640x480 VP8 at 30 fps and of 20 ms Opus packets (encoded
   once beforehand) muxed REPS times; CPU per frame and per track-second.
2. A real call (two SyntheticPeers through a CallMedia, encoded relay) with and without
   ``start_recording``: whole-process CPU over 6 s (the clients' codecs dominate; the
   difference is the recorder's cost for four tracks).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from contact_center.media.call import CallMedia
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer
from recordings.mux import TrackWriter
from tests.helpers import negotiate
from tests.recordings.test_recording_mux import encode_opus, encode_video

REPS = 10


def bench_writer() -> None:
    video = encode_video("libvpx", 300, 640, 480)
    audio = encode_opus(500)
    with tempfile.TemporaryDirectory() as directory:
        start = time.process_time()
        for rep in range(REPS):
            writer = TrackWriter(Path(directory, f"v{rep}.webm"), "video", "video/VP8", 90000)
            for index, payload in enumerate(video):
                writer.write(payload, 3000 * index, keyframe=not payload[0] & 1)
            writer.close()
            writer = TrackWriter(Path(directory, f"a{rep}.webm"), "audio", "audio/opus", 48000)
            for index, payload in enumerate(audio):
                writer.write(payload, 960 * index, keyframe=True)
            writer.close()
        cpu = time.process_time() - start
    frames = REPS * (len(video) + len(audio))
    print(
        f"writer: {frames} frames, {REPS * 20} track-seconds: {cpu:.3f} s CPU, "
        f"{1e6 * cpu / frames:.1f} us/frame, {100 * cpu / (REPS * 20):.3f}% of a core per track"
    )


async def call_cpu(record: bool) -> float:
    ice = IceSettings.loopback()
    call = CallMedia("bench", ice)
    customer, advisor = SyntheticPeer(ice, name="customer"), SyntheticPeer(ice, name="advisor")
    with tempfile.TemporaryDirectory() as directory:
        if record:
            call.start_recording(Path(directory))
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await asyncio.sleep(2)
        start = time.process_time()
        await asyncio.sleep(6)
        cpu = (time.process_time() - start) / 6
        await call.close()
        await customer.close()
        await advisor.close()
    return cpu


async def bench_call() -> None:
    for record in (False, True, False, True):
        cpu = await call_cpu(record)
        print(f"call {'recording' if record else 'plain    '}: {100 * cpu:.1f}% of a core")


if __name__ == "__main__":
    bench_writer()
    asyncio.run(bench_call())
