"""Encoded vs transcode relay: server CPU per video call, and the calls each path holds at 29 fps.

    python -m bench.media --calls 1,2,4,8,16,32 --seconds 15        (the same as)
    python -m bench.media_paths --calls 1,2,4,8,16,32 --seconds 15

Server: for every (calls, path) step a fresh bare ``MediaHub(relay=path)`` subprocess
(``python -m bench.media --serve-internal --relay PATH``: loopback ICE, no signalling, router,
database or recorder). ``contact-center serve`` has no relay setting yet, hence this server.
Clients: ``bench.media_clients.ClipPeer`` pairs in this process, sending a 640x480 30 fps VP8 +
Opus clip encoded once at start (no encoding during the run) and counting received encoded
frames (no decoding): what remains on the clients is SRTP, RTP and packetisation.
For each count both paths run back to back; a path stops growing once its slowest receiver gets
fewer than ``--stop-below-fps`` (29) video frames a second. Server CPU is ``/proc/<pid>`` (all
threads), client CPU this process's ``process_time``, both in % of one core.
Output: progress on stderr, one JSON line per step, then a summary JSON line (last line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.media import (
    CONNECT_SECONDS,
    WARMUP_SECONDS,
    InternalServer,
    cpu_seconds,
    machine_cpu_seconds,
    progress,
    raise_nofile_limit,
    rss_mb,
    udp_backlog_kb,
)
from bench.media_clients import ClipPeer, make_clip, video_figures
from contact_center.media.call import PARTIES
from contact_center.media.ice import IceSettings

# The clip is as long as a step (connect + warm-up + window + margin) rather than looped:
# aiortc 1.16's MediaPlayer(loop=True, decode=False) restarts packet pts at 0 on each loop, and
# its pacing (wall clock since the first packet) then lets the next loop out in a burst.
CLIP_MARGIN_SECONDS = 15.0  # the last peers connect this much later than the first ones, at most


async def measure_path(
    path: str, calls: int, seconds: float, clip: Path, server_args: tuple[str, ...]
) -> dict[str, Any]:
    """``calls`` clip calls through a fresh bare MediaHub on ``path``, measured for ``seconds``."""
    args = ("--relay", path, *server_args)
    ice = IceSettings.loopback()
    peers: list[ClipPeer] = []
    async with InternalServer(args) as server:
        try:
            for index in range(calls):
                for party in PARTIES:
                    peer = ClipPeer(ice, clip, name=f"{party}-{index}")
                    peers.append(peer)
                    sdp = await server.answer(f"bench-{index}", party, await peer.offer())
                    await peer.accept_answer(sdp)
            async with asyncio.timeout(CONNECT_SECONDS):
                await asyncio.gather(*(peer.wait_connected() for peer in peers))
            progress(f"{path}: {calls} call(s) connected; warming up {WARMUP_SECONDS:.0f} s")
            await asyncio.sleep(WARMUP_SECONDS)

            await server.stats(reset=True)
            start, cpu_start = time.monotonic(), cpu_seconds(server.pid)
            loop_cpu_start = cpu_seconds(server.pid, thread=server.pid)
            client_cpu_start, machine_cpu_start = time.process_time(), machine_cpu_seconds()
            peak_rss, peak_backlog = rss_mb(server.pid), udp_backlog_kb(server.pid)
            while (elapsed := time.monotonic() - start) < seconds:
                await asyncio.sleep(min(1.0, seconds - elapsed))
                peak_rss = max(peak_rss, rss_mb(server.pid))
                peak_backlog = max(peak_backlog, udp_backlog_kb(server.pid))
            end = time.monotonic()
            wall = end - start
            server_cpu = (cpu_seconds(server.pid) - cpu_start) / wall * 100
            loop_cpu = (cpu_seconds(server.pid, thread=server.pid) - loop_cpu_start) / wall * 100
            client_cpu = (time.process_time() - client_cpu_start) / wall * 100
            machine_cpu = (machine_cpu_seconds() - machine_cpu_start) / wall * 100
            stats = await server.stats()
            video = video_figures(peers, start, end)
            audio_fps = [len(p.received["audio"].window(start, end)) / wall for p in peers]
            clip_ended = sum(p.player.video is not None and p.player.video.readyState != "live"
                             for p in peers)  # fmt: skip
            return {
                "path": path,
                "calls": calls,
                "server_cpu_pct_per_call": round(server_cpu / calls, 1),
                "min_fps": video["min_fps"],
                "server_cpu_pct": round(server_cpu, 1),
                "server_loop_thread_cpu_pct": round(loop_cpu, 1),
                "client_cpu_pct": round(client_cpu, 1),
                "client_cpu_pct_per_call": round(client_cpu / calls, 1),
                "other_cpu_pct": round(machine_cpu - server_cpu - client_cpu, 1),
                **{k: v for k, v in video.items() if k != "min_fps"},
                "audio_min_fps": round(min(audio_fps), 1),
                "server_rss_mb": round(peak_rss, 1),
                "server_udp_backlog_kb_max": round(peak_backlog, 1),
                "server_loop_lag_p99_ms": stats["lag_p99_ms"],
                "server_relay_path": stats["relay_path"],
                "relay_modes": stats["relay_modes"],
                "relay_frames_dropped": stats["relay_frames_dropped"],
                "clip_ended_early": clip_ended,
                "seconds": round(wall, 1),
                "cpus": os.cpu_count(),
            }
        finally:
            for index in range(calls):
                with contextlib.suppress(Exception):
                    await server.close_call(f"bench-{index}")
            for peer in peers:
                await peer.close()


def summarise(paths: list[str], results: list[dict[str, Any]], min_fps: float) -> dict[str, Any]:
    """Per-call CPU of each path at the largest count both held, their ratio, and the limits."""
    held: dict[str, dict[int, dict[str, Any]]] = {path: {} for path in paths}
    for result in results:
        if result["min_fps"] >= min_fps:
            held[result["path"]][result["calls"]] = result
    limits = {path: max(held[path], default=0) for path in paths}
    summary: dict[str, Any] = {"max_calls_at_29fps": limits, "min_fps_threshold": min_fps}
    if {"encoded", "transcode"} <= set(paths):
        common = sorted(set(held["encoded"]) & set(held["transcode"]))
        summary["ratios_by_calls"] = {
            str(calls): round(
                held["transcode"][calls]["server_cpu_pct"]
                / max(0.1, held["encoded"][calls]["server_cpu_pct"]),
                1,
            )
            for calls in common
        }
        at = common[-1] if common else None
        encoded = held["encoded"].get(at) if at else None
        transcode = held["transcode"].get(at) if at else None
        summary.update(
            compared_at_calls=at,
            encoded_cpu_pct_per_call=encoded and encoded["server_cpu_pct_per_call"],
            transcode_cpu_pct_per_call=transcode and transcode["server_cpu_pct_per_call"],
            ratio=summary["ratios_by_calls"].get(str(at)),
        )
    summary["server"] = "bare MediaHub subprocess (bench.media --serve-internal), relay only"
    return summary


async def compare_paths(
    paths: list[str],
    counts: list[int],
    seconds: float,
    min_fps: float,
    server_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run every count on every path still holding ``min_fps``; print steps, then the summary."""
    raise_nofile_limit()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cc-bench-clip-") as tmp:
        clip_seconds = CONNECT_SECONDS + WARMUP_SECONDS + seconds + CLIP_MARGIN_SECONDS
        progress(f"encoding a {clip_seconds:.0f} s 640x480 VP8 + Opus clip")
        clip = await make_clip(Path(tmp) / "clip.webm", clip_seconds)
        active = list(paths)
        for calls in counts:
            for path in list(active):
                progress(f"{path}: {calls} call(s), {seconds:.0f} s")
                try:
                    async with asyncio.timeout(seconds + CONNECT_SECONDS + WARMUP_SECONDS + 90):
                        result = await measure_path(path, calls, seconds, clip, server_args)
                except (TimeoutError, ConnectionError, OSError, aiohttp.ClientError) as exc:
                    result = {"path": path, "calls": calls, "min_fps": 0.0, "error": repr(exc)}
                print(json.dumps(result), flush=True)
                results.append(result)
                if result["min_fps"] < min_fps:
                    progress(f"{path}: min fps {result['min_fps']} < {min_fps} at {calls} call(s)")
                    active.remove(path)
            if not active:
                break
    summary = summarise(paths, results, min_fps)
    print(json.dumps(summary), flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default="encoded,transcode")
    parser.add_argument("--calls", default="1,2,4,8,16,32")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--stop-below-fps", type=float, default=29.0)
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p in ("encoded", "transcode")]
    counts = [int(c) for c in args.calls.split(",") if c.strip()]
    if not paths or not counts or min(counts) < 1 or max(counts) > 64:
        parser.error("--paths takes encoded,transcode; --calls counts between 1 and 64")
    asyncio.run(compare_paths(paths, counts, args.seconds, args.stop_below_fps))


if __name__ == "__main__":
    main()
