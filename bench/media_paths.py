"""Server CPU per video call on each relay path: ``encoded`` (forward as is) vs ``transcode``.

    python -m bench.media_paths --calls 1 --seconds 15 --paths encoded,transcode

For each path, a fresh server process (this module with ``--serve PATH``) holds a ``MediaHub``
with that relay path behind a loopback HTTP endpoint that answers offers; this process runs two
``SyntheticPeer`` clients per call (640x480 @ 30 fps VP8 video plus Opus audio, both ways).
Server CPU (user + system, all threads) comes from ``/proc/<pid>/stat`` over the measured window
only. Kept apart from ``bench/media.py`` (edited by others) on purpose; all media on 127.0.0.1.
Output: progress on stderr, one JSON line per path, then a JSON object with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web

from contact_center.media.call import MediaHub
from contact_center.media.ice import IceSettings
from contact_center.media.relay import RelayPath
from contact_center.media.synthetic import SyntheticPeer

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_SECONDS = 3.0


def serve(path: RelayPath, port: int) -> None:
    """The server process: answer offers on ``POST /offer``, report stats on ``GET /stats``."""
    hub_key = web.AppKey("hub", MediaHub)

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        call = request.app[hub_key].get_or_create(body["contact"])
        return web.json_response({"sdp": await call.answer(body["party"], body["sdp"])})

    async def stats(request: web.Request) -> web.Response:
        hub = request.app[hub_key]
        calls = [hub.get(contact) for contact in list(hub._calls)]
        return web.json_response([c.relay_stats() for c in calls if c is not None])

    async def hub_ctx(app: web.Application) -> Any:
        app[hub_key] = MediaHub(IceSettings.loopback(), relay=path)
        yield
        await app[hub_key].close()

    app = web.Application()
    app.cleanup_ctx.append(hub_ctx)
    app.router.add_post("/offer", offer)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(path: RelayPath, calls: int, seconds: float) -> dict[str, Any]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.media_paths", "--serve", path, "--port", str(port)
    )
    base = f"http://127.0.0.1:{port}"
    ice = IceSettings.loopback()
    peers: list[SyntheticPeer] = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/stats"):
                        break
                await asyncio.sleep(0.1)
            for index in range(calls):
                for party in ("customer", "advisor"):
                    peer = SyntheticPeer(ice, name=f"{party}-{index}")
                    peers.append(peer)
                    body = {"contact": f"c{index}", "party": party, "sdp": await peer.offer()}
                    async with http.post(f"{base}/offer", json=body) as response:
                        await peer.accept_answer((await response.json())["sdp"])
            async with asyncio.timeout(20):
                for peer in peers:
                    await peer.wait_connected()
            await asyncio.sleep(WARMUP_SECONDS)
            cpu_start, wall_start = cpu_seconds(server.pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu = cpu_seconds(server.pid) - cpu_start
            wall = time.monotonic() - wall_start
            async with http.get(f"{base}/stats") as response:
                relay_stats = await response.json()
        fps = [peer.stats.fps("video", since=time.monotonic() - seconds) for peer in peers]
        p50 = [peer.stats.latency_ms(0.5) for peer in peers]
        return {
            "path": path,
            "calls": calls,
            "seconds": round(wall, 1),
            "server_cpu_pct": round(100 * cpu / wall, 1),
            "server_cpu_pct_per_call": round(100 * cpu / wall / calls, 1),
            "received_fps_min": round(min(fps), 1),
            "latency_p50_ms_max": max(v for v in p50 if v is not None) if any(p50) else None,
            "out_of_order": sum(peer.stats.out_of_order for peer in peers),
            "modes": sorted({str(s["mode"]) for call in relay_stats for s in call.values()}),
        }
    finally:
        for peer in peers:
            await peer.close()
        server.terminate()
        async with asyncio.timeout(10):
            await server.wait()


async def main(paths: list[RelayPath], calls: int, seconds: float) -> None:
    results = {}
    for path in paths:
        print(f"measuring {path}: {calls} call(s), {seconds:.0f} s", file=sys.stderr)
        results[path] = await measure(path, calls, seconds)
        print(json.dumps(results[path]), flush=True)
    if {"encoded", "transcode"} <= results.keys():
        ratio = results["transcode"]["server_cpu_pct"] / max(
            0.1, results["encoded"]["server_cpu_pct"]
        )
        print(json.dumps({"transcode_over_encoded_cpu": round(ratio, 1)}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default="encoded,transcode")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--serve", choices=["encoded", "transcode"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
    else:
        chosen: list[RelayPath] = [
            p for p in ("encoded", "transcode") if p in args.paths.split(",")
        ]
        asyncio.run(main(chosen, args.calls, args.seconds))
