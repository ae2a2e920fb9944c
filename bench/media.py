"""Media server cost per concurrent video call: CPU, RSS, received frame rate, latency, loop lag.

    python -m bench.media --calls 1,2,4,8 --seconds 20

For each number of calls, a fresh media server process is started, and this process runs two
``SyntheticPeer`` clients per call (customer and advisor, 640x480 @ 30 fps video plus audio, both
ways). The server answers each client's offer and relays customer <-> advisor (aiortc decodes and
re-encodes). Server CPU comes from ``/proc/<pid>/stat`` of the server process only.

Server side: until the real ``contact-center serve`` speaks ``rtc.offer`` over the WebSocket, the
server is this module run with ``--internal-server``: a ``MediaHub`` behind a tiny loopback
aiohttp endpoint (``add_bench_routes``, which the real server could also mount). The clients only
use the ``MediaServer`` protocol below, so a WebSocket-driven implementation can replace
``InternalServer`` without touching the measurement.

Output: progress on stderr; on stdout one JSON line per calls-count, then a JSON list of them all.
All media stays on 127.0.0.1; no STUN.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from contact_center.media.call import MediaHub, Party
from contact_center.media.ice import IceSettings
from contact_center.media.synthetic import SyntheticPeer

logger = logging.getLogger("bench.media")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONNECT_SECONDS = 20.0
WARMUP_SECONDS = 3.0

# ---------------------------------------------------------------------- server side

HUB_KEY = web.AppKey("media_hub", MediaHub)
LAG_KEY: web.AppKey[LoopLagMonitor] = web.AppKey("loop_lag")


class LoopLagMonitor:
    """Measures how late the event loop wakes a 50 ms sleeper (its own task, owned here)."""

    def __init__(self, period: float = 0.05, on_tick: Any = None) -> None:
        self.period = period
        self.samples: deque[float] = deque(maxlen=100_000)
        self._on_tick = on_tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop lag monitor")

    async def _run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.period)
            self.samples.append(max(0.0, time.monotonic() - start - self.period) * 1000)
            if self._on_tick is not None:
                self._on_tick()

    def summary(self) -> dict[str, float]:
        values = sorted(self.samples)
        if not values:
            return {"lag_p99_ms": 0.0, "lag_max_ms": 0.0}
        return {
            "lag_p99_ms": round(values[min(len(values) - 1, int(0.99 * len(values)))], 1),
            "lag_max_ms": round(values[-1], 1),
        }

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def add_bench_routes(app: web.Application) -> None:
    """POST /bench/offer, POST /bench/close, GET /bench/stats (?reset=1) over ``app[HUB_KEY]``."""

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        party: Party = body["party"]
        call = request.app[HUB_KEY].get_or_create(body["contact_id"])
        return web.json_response({"sdp": await call.answer(party, body["sdp"])})

    async def close(request: web.Request) -> web.Response:
        body = await request.json()
        await request.app[HUB_KEY].close_call(body["contact_id"])
        return web.json_response({})

    async def stats(request: web.Request) -> web.Response:
        lag = request.app[LAG_KEY]
        summary = lag.summary()
        if request.query.get("reset"):
            lag.samples.clear()
        return web.json_response({"calls": len(request.app[HUB_KEY]), **summary})

    app.router.add_post("/bench/offer", offer)
    app.router.add_post("/bench/close", close)
    app.router.add_get("/bench/stats", stats)


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    app[HUB_KEY] = MediaHub(IceSettings.loopback())
    yield
    await app[HUB_KEY].close()


def _lag_context(parent_pid: int) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        def exit_if_orphaned() -> None:
            if os.getppid() != parent_pid:  # the bench died: don't linger
                os.kill(os.getpid(), signal.SIGTERM)

        app[LAG_KEY] = LoopLagMonitor(on_tick=exit_if_orphaned)
        app[LAG_KEY].start()
        yield
        await app[LAG_KEY].stop()

    return context


async def run_internal_server() -> None:
    """Serve the bench endpoint on a free loopback port; print ``{"port": N}``; stop on SIGTERM."""
    app = web.Application()
    app.cleanup_ctx.append(_hub_context)
    app.cleanup_ctx.append(_lag_context(os.getppid()))
    add_bench_routes(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------- client side


class MediaServer(Protocol):
    """What the measurement needs from a media server."""

    pid: int

    async def answer(self, contact_id: str, party: Party, sdp: str) -> str: ...

    async def close_call(self, contact_id: str) -> None: ...

    async def stats(self, *, reset: bool = False) -> dict[str, Any]: ...


class InternalServer:
    """``python -m bench.media --internal-server`` as a subprocess, driven over loopback HTTP."""

    def __init__(self, extra_args: tuple[str, ...] = ()) -> None:
        self._extra_args = extra_args
        self._proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._base = ""
        self.pid = 0

    async def __aenter__(self) -> InternalServer:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.media",
            "--internal-server",
            *self._extra_args,
            stdout=subprocess.PIPE,
        )
        self.pid = self._proc.pid
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 30)
        self._base = f"http://127.0.0.1:{json.loads(line)['port']}/bench"
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), 20)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()

    async def _post(self, path: str, body: dict[str, str]) -> dict[str, Any]:
        assert self._http is not None
        async with self._http.post(self._base + path, json=body) as response:
            response.raise_for_status()
            result: dict[str, Any] = await response.json()
            return result

    async def answer(self, contact_id: str, party: Party, sdp: str) -> str:
        body = {"contact_id": contact_id, "party": party, "sdp": sdp}
        return str((await self._post("/offer", body))["sdp"])

    async def close_call(self, contact_id: str) -> None:
        await self._post("/close", {"contact_id": contact_id})

    async def stats(self, *, reset: bool = False) -> dict[str, Any]:
        assert self._http is not None
        url = self._base + "/stats" + ("?reset=1" if reset else "")
        async with self._http.get(url) as response:
            result: dict[str, Any] = await response.json()
            return result


def cpu_seconds(pid: int, *, thread: int | None = None) -> float:
    """User + system CPU time of one process (not its children), or of one of its threads."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    with open(path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine, all cores (from /proc/stat; idle and iowait excluded)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def udp_backlog_kb(pid: int) -> float:
    """Bytes waiting unread in the receive queues of ``pid``'s UDP sockets, in KiB.

    When the event loop falls behind, datagrams wait here (asyncio reads one per socket per loop
    iteration): a growing backlog is latency that no frame counter in aiortc shows.
    """
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    backlog = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as sockets:
            for line in sockets.readlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    backlog += int(fields[4].split(":")[1], 16)
    return backlog / 1024


def progress(message: str) -> None:
    print(f"[bench.media {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def measure(server: MediaServer, calls: int, seconds: float) -> dict[str, Any]:
    """Connect ``calls`` customer/advisor pairs through ``server`` and measure for ``seconds``."""
    ice = IceSettings.loopback()
    peers: list[SyntheticPeer] = []
    client_lag = LoopLagMonitor()
    client_lag.start()
    try:
        for index in range(calls):
            for party in ("customer", "advisor"):
                peer = SyntheticPeer(ice, name=f"{party}-{index}")
                peers.append(peer)
                sdp = await server.answer(f"bench-{index}", party, await peer.offer())
                await peer.accept_answer(sdp)
        async with asyncio.timeout(CONNECT_SECONDS):
            for peer in peers:
                await peer.wait_connected()
        progress(f"{calls} call(s) connected; warming up {WARMUP_SECONDS:.0f} s")
        await asyncio.sleep(WARMUP_SECONDS)

        await server.stats(reset=True)
        client_lag.samples.clear()
        start, cpu_start = time.monotonic(), cpu_seconds(server.pid)
        loop_cpu_start = cpu_seconds(server.pid, thread=server.pid)
        client_cpu_start, machine_cpu_start = time.process_time(), machine_cpu_seconds()
        peak_rss, peak_backlog = rss_mb(server.pid), udp_backlog_kb(server.pid)
        while (elapsed := time.monotonic() - start) < seconds:
            await asyncio.sleep(min(1.0, seconds - elapsed))
            peak_rss = max(peak_rss, rss_mb(server.pid))
            peak_backlog = max(peak_backlog, udp_backlog_kb(server.pid))
        wall = time.monotonic() - start
        server_cpu_pct = (cpu_seconds(server.pid) - cpu_start) / wall * 100
        # The main thread runs the event loop (RTP, SRTP, jitter buffers, RTCP in Python); the
        # codecs run in other threads. A loop thread near 100 % is the process's ceiling.
        loop_cpu_pct = (cpu_seconds(server.pid, thread=server.pid) - loop_cpu_start) / wall * 100
        client_cpu_pct = (time.process_time() - client_cpu_start) / wall * 100
        machine_cpu_pct = (machine_cpu_seconds() - machine_cpu_start) / wall * 100
        server_stats = await server.stats()

        fps = [peer.stats.fps("video", since=start) for peer in peers]
        latencies = sorted(
            ms for peer in peers for t, ms in peer.stats.latencies if start <= t <= start + wall
        )
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None
        p50 = latencies[len(latencies) // 2] if latencies else None
        return {
            "calls": calls,
            "server_cpu_pct_per_call": round(server_cpu_pct / calls, 1),
            "min_fps": round(min(fps), 1),
            "p99_latency_ms": p99,
            "server_rss_mb": round(peak_rss, 1),
            "server_cpu_pct": round(server_cpu_pct, 1),
            "mean_fps": round(sum(fps) / len(fps), 1),
            "p50_latency_ms": p50,
            "server_loop_thread_cpu_pct": round(loop_cpu_pct, 1),
            "server_loop_lag_p99_ms": server_stats["lag_p99_ms"],
            "server_loop_lag_max_ms": server_stats["lag_max_ms"],
            "server_udp_backlog_kb_max": round(peak_backlog, 1),
            "client_cpu_pct": round(client_cpu_pct, 1),
            "client_loop_lag_p99_ms": client_lag.summary()["lag_p99_ms"],
            # Everything else the machine ran meanwhile (other users' jobs skew the figures).
            "other_cpu_pct": round(machine_cpu_pct - server_cpu_pct - client_cpu_pct, 1),
            "out_of_order": sum(peer.stats.out_of_order for peer in peers),
            "seconds": round(wall, 1),
            "cpus": os.cpu_count(),
        }
    finally:
        await client_lag.stop()
        for index in range(calls):
            with contextlib.suppress(Exception):
                await server.close_call(f"bench-{index}")
        for peer in peers:
            await peer.close()


async def run_count(
    calls: int, seconds: float, max_other_cpu: float, retries: int, server_args: tuple[str, ...]
) -> dict[str, Any]:
    """Measure ``calls``; while other jobs ate more than ``max_other_cpu`` %, measure again."""
    best: dict[str, Any] | None = None
    for attempt in range(retries + 1):
        if attempt:
            progress(f"other work used {best and best['other_cpu_pct']} % CPU; retry in 30 s")
            await asyncio.sleep(30)
        progress(f"{calls} call(s): starting a media server")
        async with InternalServer(server_args) as server:
            async with asyncio.timeout(seconds + CONNECT_SECONDS + WARMUP_SECONDS + 60):
                result = await measure(server, calls, seconds)
        if best is None or result["other_cpu_pct"] < best["other_cpu_pct"]:
            best = result
        if result["other_cpu_pct"] <= max_other_cpu:
            break
    assert best is not None
    best["contended"] = best["other_cpu_pct"] > max_other_cpu
    return best


async def run_bench(
    call_counts: list[int],
    seconds: float,
    stop_below_fps: float,
    max_other_cpu: float,
    retries: int,
    server_args: tuple[str, ...] = (),
) -> None:
    results: list[dict[str, Any]] = []
    for calls in call_counts:
        result = await run_count(calls, seconds, max_other_cpu, retries, server_args)
        print(json.dumps(result), flush=True)
        results.append(result)
        if result["min_fps"] < stop_below_fps:
            progress(
                f"min fps {result['min_fps']} < {stop_below_fps}: the machine does not hold "
                f"{calls} call(s); skipping larger counts"
            )
            break
    print(json.dumps(results), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="1,2,4", help="comma-separated concurrent call counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per count")
    parser.add_argument("--stop-below-fps", type=float, default=10.0)
    parser.add_argument(
        "--max-other-cpu",
        type=float,
        default=15.0,
        help="re-measure a count when other processes used more CPU (%% of one core) than this",
    )
    parser.add_argument("--retries", type=int, default=2, choices=range(0, 6))
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval() for server and clients (GIL hand-over; Python default 0.005)",
    )
    parser.add_argument("--internal-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.internal_server:
        asyncio.run(run_internal_server())
        return
    counts = [int(part) for part in args.calls.split(",") if part.strip()]
    if not counts or min(counts) < 1 or max(counts) > 64:
        parser.error("--calls takes counts between 1 and 64")
    server_args: tuple[str, ...] = ()
    if args.switch_interval is not None:
        server_args = ("--switch-interval", str(args.switch_interval))
    asyncio.run(
        run_bench(
            counts,
            args.seconds,
            args.stop_below_fps,
            args.max_other_cpu,
            args.retries,
            server_args,
        )
    )


if __name__ == "__main__":
    main()
