"""Media server cost per concurrent video call: CPU, RSS, received frame rate, latency, loop lag.

    python -m bench.media --calls 1,2,4,8,16,32 --seconds 15
    python -m bench.media --real-server --calls 1,2,4,8,16,32 --seconds 15
    python -m bench.media --internal-server --relay transcode --calls 1,2,4
    python -m bench.media --real-server --server-cpu 0 --client-cpu 1 --calls 8,16,24,28,32

Default: the relay paths compared (``bench/media_paths.py``): for each count, ``encoded`` then
``transcode``, each on a fresh bare ``MediaHub(relay=path)`` subprocess (``--serve-internal``),
with light clients (``bench/media_clients.py``) that send a clip encoded once at start and count
received frames without decoding them; a path stops growing below 29 fps. Last line: a JSON
summary (``encoded_cpu_pct_per_call``, ``transcode_cpu_pct_per_call``, ``ratio``,
``max_calls_at_29fps``).

``--real-server``: the relay paths compared through the REAL server. For each (calls, path)
step, ``encoded`` then ``transcode``, a fresh ``contact-center serve`` subprocess (temporary
``CC_VAR_DIR``, free ``CC_PORT``, ``CC_ICE_HOST_ADDRESSES=127.0.0.1``, ``CC_LOG_LEVEL=WARNING``,
``CC_MEDIA_RELAY=<path>``, ``CC_BOT_ENABLED=false``, after ``db upgrade`` and with one advisor
per call). Each call goes through the WebSocket protocol (``contact_center.tools.wsclient``): the
advisor signs in and goes ``available``, a guest customer sends ``session.start`` (video,
``skip_bot``), the advisor ``offer.accept``s, then each side ``rtc.offer``s a
``bench.media_clients.ClipPeer`` (the light clients of the default mode: a pre-encoded clip
sent with ``MediaPlayer(decode=False)``, received frames counted undecoded). On the encoded path
the server records every call (one WebM per inbound track under ``CC_RECORDINGS_DIR``, here
``<var>/recordings``): files and bytes are counted, during the window and after the calls end.
Server CPU comes from ``/proc/<pid>/stat`` of the server process only; its embedded Valkey, the
clients (this process) and the rest of the machine are reported apart. The server's event-loop
lag is estimated from outside, without touching server code: a probe subprocess times ``GET
/healthz`` every 100 ms (the handler does no I/O, so its latency is loop lag plus a loopback HTTP
round trip of about 1 ms; the probe shares the CPUs, so read it as an upper bound). A path stops
growing below 29 fps; a step is measured again (``--retries``) while other processes used more
than ``--max-other-cpu``. Last line: the same summary as the default mode plus ``recorded``.

``--internal-server``: ``SyntheticPeer`` clients (they paint, encode and decode); the server
is this module run with ``--serve-internal --relay PATH`` (a ``MediaHub`` behind a tiny loopback aiohttp endpoint,
``add_bench_routes``), with its own 50 ms-sleeper loop lag monitor: the media path alone,
without signalling, router, database or recorder.

Output: progress on stderr; on stdout one JSON line per step, then a summary line (JSON).
All media stays on 127.0.0.1; no STUN.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import http.client
import json
import logging
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from bench.media_clients import ClipPeer, make_clip, video_figures
from contact_center.db.models import Role
from contact_center.media.call import DEFAULT_RELAY_PATH, MediaHub, Party
from contact_center.media.ice import IceSettings
from contact_center.media.relay import RelayPath
from contact_center.tools.synthetic import SyntheticPeer, quantile
from contact_center.tools.wsclient import RequestFailed, SignallingClient

logger = logging.getLogger("bench.media")

ROOT = Path(__file__).resolve().parent.parent
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
        if not self.samples:
            return {"lag_p99_ms": 0.0, "lag_max_ms": 0.0}
        return {
            "lag_p99_ms": round(quantile(self.samples, 0.99) or 0.0, 1),
            "lag_max_ms": round(max(self.samples), 1),
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
        hub = request.app[HUB_KEY]
        relays = [
            stats
            for call in list(hub._calls.values())  # the bench's own hub: no public iterator
            for stats in call.relay_stats().values()
        ]
        return web.json_response(
            {
                "calls": len(hub),
                "relay_path": hub.relay_path,
                "relay_modes": sorted({str(r["mode"]) for r in relays}),
                "relay_frames_dropped": sum(int(str(r["frames_dropped"])) for r in relays),
                **summary,
            }
        )

    app.router.add_post("/bench/offer", offer)
    app.router.add_post("/bench/close", close)
    app.router.add_get("/bench/stats", stats)


def _hub_context(relay: RelayPath) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        app[HUB_KEY] = MediaHub(IceSettings.loopback(), relay=relay)
        yield
        await app[HUB_KEY].close()

    return context


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


async def run_internal_server(relay: RelayPath = DEFAULT_RELAY_PATH) -> None:
    """Serve the bench endpoint on a free loopback port; print ``{"port": N}``; stop on SIGTERM."""
    app = web.Application()
    app.cleanup_ctx.append(_hub_context(relay))
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
            "--serve-internal",
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


class RealServer:
    """``contact-center serve`` as a subprocess on a free loopback port, with fresh advisors.

    A temporary ``CC_VAR_DIR`` (SQLite, embedded Valkey, recordings), loopback-only ICE, logs at
    WARNING. ``advisors`` accounts are created in the new database before the server starts;
    ``env`` adds or overrides ``CC_*`` settings. The server dies with the bench (PDEATHSIG).
    """

    def __init__(
        self,
        advisors: int,
        *,
        capacity: str = "video:1,voice:1,text:3",
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        self.advisor_count, self.capacity = advisors, capacity
        self._extra_env = env or {}
        self.cpus = cpus  # the server (and its embedded Valkey, a child) pinned to these
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.pid = 0
        self.url = ""
        self.var_dir = Path()
        self.advisors: list[tuple[str, str]] = []

    def _env(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
        env.update(
            CC_VAR_DIR=str(self.var_dir),
            CC_PORT=str(port),
            CC_ICE_HOST_ADDRESSES="127.0.0.1",
            CC_LOG_LEVEL="WARNING",
        )
        env.update(self._extra_env)
        return env

    async def _create_advisors(self) -> None:
        from contact_center.db.engine import create_engine, session_factory, transaction
        from contact_center.identity.users import UserCreate, create_user, parse_levels

        password = secrets.token_urlsafe(18)
        url = self._extra_env.get("CC_DATABASE_URL")
        engine = create_engine(url or f"sqlite+aiosqlite:///{self.var_dir / 'contact_center.db'}")
        try:
            async with transaction(session_factory(engine)) as session:
                for n in range(1, self.advisor_count + 1):
                    data = UserCreate(
                        username=f"bench-advisor-{n}",
                        password=password,
                        role=Role.ADVISOR,
                        languages=["en"],
                        skills={"general": 3},
                        capacity=parse_levels(self.capacity, what="capacity"),
                    )
                    await create_user(session, data=data)
                    self.advisors.append((data.username, password))
        finally:
            await engine.dispose()

    async def __aenter__(self) -> RealServer:
        raise_nofile_limit()
        self._tmp = tempfile.TemporaryDirectory(prefix="cc-bench-")
        self.var_dir = Path(self._tmp.name) / "var"
        port = free_port()
        env = self._env(port)
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "contact_center", "db", "upgrade",
            env=env, stdout=subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
        if await asyncio.wait_for(migrate.wait(), 120) != 0:
            raise RuntimeError("contact-center db upgrade failed")
        await self._create_advisors()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "contact_center", "serve",
            env=env, stdout=subprocess.DEVNULL, cwd=ROOT, preexec_fn=self._preexec,
        )  # fmt: skip
        self.pid = self._proc.pid
        self.url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            while True:
                if self._proc.returncode is not None:
                    raise RuntimeError(f"contact-center serve exited with {self._proc.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.2)
        return self

    def _preexec(self) -> None:
        _die_with_parent()
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)

    def valkey_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.var_dir / "valkey" / "valkey.pid").read_text())
        return None

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self._proc.wait(), 30)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the bench dies (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def parse_cpus(text: str | None) -> set[int] | None:
    """``"0"`` or ``"0,1"`` -> a set of CPU numbers this machine has (``--server-cpu`` etc.)."""
    if not text:
        return None
    try:
        cpus = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise ValueError(f"CPU list {text!r}: numbers separated by commas") from None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise ValueError(f"CPU list {text!r}: this process may use CPUs {sorted(allowed)}")
    return cpus


def raise_nofile_limit() -> int:
    """Raise this process's soft open-files limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe_healthz(base_url: str, seconds: float, period: float = 0.1) -> None:
    """Time ``GET /healthz`` every ``period`` s for ``seconds``; print the ms samples as JSON.

    Runs in a process of its own (``--probe``) so that the clients' busy event loop does not
    delay the probe: what it measures is the server's loop lag plus a loopback round trip.
    """
    host, port = base_url.removeprefix("http://").split(":")
    samples: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            samples.append((time.perf_counter() - start) * 1000)
        except (OSError, http.client.HTTPException):
            failures += 1
            connection.close()
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
        time.sleep(max(0.0, period - (time.perf_counter() - start)))
    connection.close()
    print(json.dumps({"samples": samples, "failures": failures}), flush=True)


async def healthz_latency(base_url: str, seconds: float) -> dict[str, Any]:
    """Run ``probe_healthz`` in a subprocess; p50/p99/max of the samples."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.media", "--probe", base_url, "--seconds", str(seconds),
        stdout=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), seconds + 30)
    result = json.loads(out.decode().strip().splitlines()[-1])
    values = result["samples"]
    if not values:
        return {"healthz_p50_ms": None, "healthz_p99_ms": None, "healthz_max_ms": None}
    return {
        "healthz_p50_ms": round(quantile(values, 0.5) or 0.0, 1),
        "healthz_p99_ms": round(quantile(values, 0.99) or 0.0, 1),
        "healthz_max_ms": round(max(values), 1),
        "healthz_failures": result["failures"],
    }


def cpu_seconds(pid: int, *, thread: int | None = None) -> float:
    """User + system CPU time of one process (not its children), or of one of its threads."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    with open(path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_seconds(cpus: set[int] | None = None) -> float:
    """Busy CPU time of the whole machine, all cores, or of ``cpus`` only (from /proc/stat;
    idle and iowait excluded)."""
    wanted = {"cpu"} if cpus is None else {f"cpu{n}" for n in cpus}
    busy = 0
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name in wanted:
                fields = [int(value) for value in values]
                busy += sum(fields[:8]) - fields[3] - fields[4]
    return busy / CLOCK_TICKS


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
        latencies = [
            ms for peer in peers for t, ms in peer.stats.latencies if start <= t <= start + wall
        ]
        p99, p50 = quantile(latencies, 0.99), quantile(latencies, 0.5)
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


# ---------------------------------------------------------------------- --real-server


@dataclass
class ClipCall:
    """One call through ``contact-center serve``: its two signalling clients and clip peers."""

    index: int
    advisor: SignallingClient
    customer: SignallingClient
    contact_id: str = ""
    peers: list[ClipPeer] = field(default_factory=list)
    ended: bool = False


async def _negotiate_clip(client: SignallingClient, contact_id: str, peer: ClipPeer) -> None:
    await client.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
    answer = await client.wait_for("rtc.answer", contact_id=contact_id, timeout=CONNECT_SECONDS)
    await peer.accept_answer(answer["sdp"])


async def start_clip_call(server: RealServer, index: int, clip: Path, ice: IceSettings) -> ClipCall:
    """Advisor ``index`` signs in and goes available, a guest starts a video contact (no bot),
    the advisor accepts it, then each side sends ``rtc.offer`` with a ``ClipPeer``.

    Calls are set up one after another, so the only available advisor is this call's.
    """
    username, password = server.advisors[index]
    call = ClipCall(index, SignallingClient(server.url), SignallingClient(server.url))
    await call.advisor.login(username, password)
    await call.advisor.connect()
    await call.advisor.request("agent.status", status="available")
    await call.customer.as_guest()
    await call.customer.connect()
    started = await call.customer.request(
        "session.start", channels=["video"], language="en", skip_bot=True
    )
    call.contact_id = started["contact_id"]
    offer = await call.advisor.wait_for("offer", contact_id=call.contact_id, timeout=30)
    accepted = await call.advisor.request("offer.accept", contact_id=call.contact_id)
    media_url = accepted.get("media_url") or offer.get("media_url")
    if media_url and not media_url.startswith(server.url.replace("http", "ws", 1)):
        raise RuntimeError(f"media of {call.contact_id} on another instance: {media_url}")
    await call.customer.wait_for(
        "session.state", contact_id=call.contact_id, state="connected", timeout=30
    )
    for client, party in ((call.customer, "customer"), (call.advisor, "advisor")):
        peer = ClipPeer(ice, clip, name=f"{party}-{index}")
        call.peers.append(peer)
        await _negotiate_clip(client, call.contact_id, peer)
    return call


async def end_clip_call(call: ClipCall) -> None:
    """``session.end`` by the customer, ``wrapup.done`` by the advisor (the recording closes)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(15):
            await call.customer.request("session.end", contact_id=call.contact_id)
            await call.advisor.wait_for("session.state", contact_id=call.contact_id,
                                        state="wrap_up")  # fmt: skip
            await call.advisor.request("wrapup.done", contact_id=call.contact_id)
            call.ended = True


def recordings_on_disk(directory: Path) -> dict[str, int]:
    """Files and bytes under ``directory`` (the server's CC_RECORDINGS_DIR)."""
    files = [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []
    return {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "calls": len({p.parent for p in files}),
    }


async def measure_real_path(
    path: str, calls: int, seconds: float, clip: Path, server_cpus: set[int] | None = None
) -> dict[str, Any]:
    """``calls`` clip calls through a fresh ``contact-center serve`` with ``CC_MEDIA_RELAY=path``.

    Server CPU is the ``serve`` process alone (all its threads); Valkey, the ``/healthz`` probe
    and these clients are reported apart (clients: this process's ``process_time``). With
    ``server_cpus`` the server (and its Valkey) run on those CPUs only, and the busy share of
    those CPUs by anything else is reported (``server_cpus_other_pct``).
    """
    env = {"CC_MEDIA_RELAY": path, "CC_BOT_ENABLED": "false"}
    ice = IceSettings.loopback()
    async with RealServer(advisors=calls, env=env, cpus=server_cpus) as server:
        recordings = server.var_dir / "recordings"
        active: list[ClipCall] = []
        try:
            setup_start = time.monotonic()
            for index in range(calls):
                active.append(await start_clip_call(server, index, clip, ice))
            peers = [peer for call in active for peer in call.peers]
            async with asyncio.timeout(CONNECT_SECONDS):
                await asyncio.gather(*(peer.wait_connected() for peer in peers))
            setup = time.monotonic() - setup_start
            progress(f"{path}: {calls} call(s) connected in {setup:.1f} s; warming up")
            await asyncio.sleep(WARMUP_SECONDS)

            valkey = server.valkey_pid()
            start, cpu_start = time.monotonic(), cpu_seconds(server.pid)
            loop_cpu_start = cpu_seconds(server.pid, thread=server.pid)
            valkey_start = cpu_seconds(valkey) if valkey else 0.0
            client_cpu_start, machine_cpu_start = time.process_time(), machine_cpu_seconds()
            server_cores_start = machine_cpu_seconds(server_cpus) if server_cpus else 0.0
            disk_start = recordings_on_disk(recordings)
            peak = {"rss": rss_mb(server.pid), "backlog": udp_backlog_kb(server.pid)}

            async def poll() -> None:
                while (elapsed := time.monotonic() - start) < seconds:
                    await asyncio.sleep(min(1.0, max(0.01, seconds - elapsed)))
                    peak["rss"] = max(peak["rss"], rss_mb(server.pid))
                    peak["backlog"] = max(peak["backlog"], udp_backlog_kb(server.pid))

            healthz, _ = await asyncio.gather(healthz_latency(server.url, seconds), poll())
            end = time.monotonic()
            wall = end - start
            server_cpu = (cpu_seconds(server.pid) - cpu_start) / wall * 100
            loop_cpu = (cpu_seconds(server.pid, thread=server.pid) - loop_cpu_start) / wall * 100
            client_cpu = (time.process_time() - client_cpu_start) / wall * 100
            valkey_cpu = ((cpu_seconds(valkey) - valkey_start) / wall * 100) if valkey else 0.0
            machine_cpu = (machine_cpu_seconds() - machine_cpu_start) / wall * 100
            pinned: dict[str, Any] = {}
            if server_cpus:
                cores = (machine_cpu_seconds(server_cpus) - server_cores_start) / wall * 100
                pinned = {
                    "server_cpus": sorted(server_cpus),
                    "client_cpus": sorted(os.sched_getaffinity(0)),
                    # the server's cores used by anything but the server and its Valkey
                    "server_cpus_other_pct": round(cores - server_cpu - valkey_cpu, 1),
                }
            disk_window = recordings_on_disk(recordings)
            video = video_figures(peers, start, end)
            audio_fps = [len(p.received["audio"].window(start, end)) / wall for p in peers]
            clip_ended = sum(p.player.video is not None and p.player.video.readyState != "live"
                             for p in peers)  # fmt: skip
            for call in active:
                await end_clip_call(call)
            await asyncio.sleep(1.0)  # the recorder closes its files in a worker thread
            disk_end = recordings_on_disk(recordings)
            recorded_rate = (disk_window["bytes"] - disk_start["bytes"]) * 8 / wall / 1000
            return {
                "path": path,
                "calls": calls,
                "server_cpu_pct_per_call": round(server_cpu / calls, 1),
                "min_fps": video["min_fps"],
                "server_cpu_pct": round(server_cpu, 1),
                "server_loop_thread_cpu_pct": round(loop_cpu, 1),
                "client_cpu_pct": round(client_cpu, 1),
                "client_cpu_pct_per_call": round(client_cpu / calls, 1),
                "valkey_cpu_pct": round(valkey_cpu, 1),
                # the rest of the machine, including the /healthz probe process
                "other_cpu_pct": round(machine_cpu - server_cpu - client_cpu - valkey_cpu, 1),
                **{k: v for k, v in video.items() if k != "min_fps"},
                "audio_min_fps": round(min(audio_fps), 1),
                "server_rss_mb": round(peak["rss"], 1),
                "server_udp_backlog_kb_max": round(peak["backlog"], 1),
                **healthz,
                "recording_files": disk_end["files"],
                "recording_bytes": disk_end["bytes"],
                "recorded_calls": disk_end["calls"],
                "recording_kbit_s_in_window": round(recorded_rate, 1),
                "calls_ended": sum(call.ended for call in active),
                "clip_ended_early": clip_ended,
                "setup_seconds": round(setup, 1),
                "seconds": round(wall, 1),
                "server": "contact-center serve",
                "cpus": os.cpu_count(),
                **pinned,
            }
        finally:
            for call in active:
                for peer in call.peers:
                    await peer.close()
                await call.customer.close()
                await call.advisor.close()


async def _measure_real_least_contended(
    path: str,
    calls: int,
    seconds: float,
    clip: Path,
    max_other_cpu: float,
    retries: int,
    server_cpus: set[int] | None,
) -> dict[str, Any]:
    """``measure_real_path``, again (up to ``retries`` times) while other processes used more
    than ``max_other_cpu`` % of a core; the least contended attempt is kept."""
    best: dict[str, Any] | None = None
    for attempt in range(retries + 1):
        if attempt:
            progress(f"{path}: other work used {best and best.get('other_cpu_pct')} % CPU; retry")
            await asyncio.sleep(20)
        progress(f"{path}: {calls} call(s) through contact-center serve, {seconds:.0f} s")
        try:
            async with asyncio.timeout(seconds + CONNECT_SECONDS + calls * 5 + 180):
                result = await measure_real_path(path, calls, seconds, clip, server_cpus)
        except (TimeoutError, ConnectionError, OSError, RuntimeError,
                aiohttp.ClientError, RequestFailed) as exc:  # fmt: skip
            result = {"path": path, "calls": calls, "min_fps": 0.0, "error": repr(exc)}
        result["attempt"] = attempt + 1
        other = result.get("other_cpu_pct", float("inf"))
        if best is None or other < best.get("other_cpu_pct", float("inf")):
            best = result
        if other <= max_other_cpu:
            break
    assert best is not None
    best["contended"] = best.get("other_cpu_pct", float("inf")) > max_other_cpu
    return best


async def compare_real_paths(
    paths: list[str],
    counts: list[int],
    seconds: float,
    min_fps: float,
    max_other_cpu: float = 15.0,
    retries: int = 2,
    server_cpus: set[int] | None = None,
) -> dict[str, Any]:
    """Every count on every path still holding ``min_fps`` through ``contact-center serve``
    (on ``server_cpus`` when given: then calls per server core are reported)."""
    from bench.media_paths import summarise  # it imports this module

    raise_nofile_limit()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cc-bench-clip-") as tmp:
        # Calls are set up one by one (about 0.5 s each): the first clips start that much earlier.
        margin = 15.0 + max(counts) * 1.0
        clip_seconds = CONNECT_SECONDS + WARMUP_SECONDS + seconds + margin
        progress(f"encoding a {clip_seconds:.0f} s 640x480 VP8 + Opus clip")
        clip = await make_clip(Path(tmp) / "clip.webm", clip_seconds)
        active = list(paths)
        for calls in counts:
            for path in list(active):
                result = await _measure_real_least_contended(
                    path, calls, seconds, clip, max_other_cpu, retries, server_cpus
                )
                print(json.dumps(result), flush=True)
                results.append(result)
                if result["min_fps"] < min_fps:
                    progress(f"{path}: min fps {result['min_fps']} < {min_fps} at {calls} call(s)")
                    active.remove(path)
            if not active:
                break
    summary = summarise(paths, results, min_fps)
    encoded = [r for r in results if r["path"] == "encoded" and "error" not in r]
    summary["recorded"] = bool(encoded) and all(
        r["recorded_calls"] >= r["calls"] and r["recording_files"] >= 4 * r["calls"]
        and r["recording_kbit_s_in_window"] > 0
        for r in encoded
    )  # fmt: skip
    summary["recording_files_by_calls"] = {
        str(r["calls"]): [r["recording_files"], r["recording_bytes"]] for r in encoded
    }
    summary["client_cpu_pct_per_call"] = {
        f"{r['path']}/{r['calls']}": r.get("client_cpu_pct_per_call") for r in results
    }
    if server_cpus:
        cores = len(server_cpus)
        per_core = {p: round(n / cores, 1) for p, n in summary["max_calls_at_29fps"].items()}
        summary["server_cpus"] = sorted(server_cpus)
        summary["client_cpus"] = sorted(os.sched_getaffinity(0))
        summary["calls_per_server_core_at_29fps"] = per_core
        if per_core.get("transcode"):
            summary["calls_per_core_ratio"] = round(
                per_core.get("encoded", 0) / per_core["transcode"], 1
            )
    summary["server"] = (
        "contact-center serve (CC_MEDIA_RELAY, CC_BOT_ENABLED=false), ClipPeer clients over the "
        "WebSocket protocol, clients on the same machine"
        + (" (server and clients pinned to their own CPUs)" if server_cpus else "")
    )
    print(json.dumps(summary), flush=True)
    return summary


async def run_count(
    calls: int,
    seconds: float,
    max_other_cpu: float,
    retries: int,
    server_args: tuple[str, ...],
) -> dict[str, Any]:
    """Measure ``calls`` (--internal-server); while other jobs ate more than ``max_other_cpu`` %,
    measure again."""
    best: dict[str, Any] | None = None
    for attempt in range(retries + 1):
        if attempt:
            progress(f"other work used {best and best['other_cpu_pct']} % CPU; retry in 30 s")
            await asyncio.sleep(30)
        progress(f"{calls} call(s): starting a bare media server (--internal-server)")
        async with InternalServer(server_args) as server:
            async with asyncio.timeout(seconds + CONNECT_SECONDS + WARMUP_SECONDS + 60):
                result = await measure(server, calls, seconds)
                result["server"] = "internal MediaHub"
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
    parser.add_argument(
        "--calls",
        default=None,
        help="comma-separated concurrent call counts (default 1,2,4,8,16,32; 1,2,4 with "
        "--internal-server)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per count")
    parser.add_argument(
        "--stop-below-fps",
        type=float,
        default=None,
        help="stop increasing calls (per path) below this min fps (default 29; 10 with "
        "--internal-server)",
    )
    parser.add_argument(
        "--paths",
        default="encoded,transcode",
        help="relay paths to compare (default mode and --real-server), in this order for each "
        "count",
    )
    parser.add_argument(
        "--max-other-cpu",
        type=float,
        default=15.0,
        help="re-measure a count when other processes used more CPU (%% of one core) than this "
        "(--real-server/--internal-server only)",
    )
    parser.add_argument("--retries", type=int, default=2, choices=range(0, 6))
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval() for server and clients (GIL hand-over; Python default 0.005)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--real-server",
        action="store_true",
        help="ClipPeer calls through contact-center serve, CC_MEDIA_RELAY per --paths",
    )
    mode.add_argument(
        "--internal-server",
        action="store_true",
        help="SyntheticPeer calls through a bare MediaHub subprocess (relay: --relay)",
    )
    parser.add_argument(
        "--relay",
        choices=["encoded", "transcode"],
        default=DEFAULT_RELAY_PATH,
        help="the bare MediaHub's relay path (--internal-server)",
    )
    parser.add_argument(
        "--server-cpu",
        metavar="CPUS",
        help="--real-server: pin the server (and its Valkey) to these CPUs, e.g. 0",
    )
    parser.add_argument(
        "--client-cpu",
        metavar="CPUS",
        help="--real-server: pin this process (the clients, the /healthz probe) to these CPUs",
    )
    parser.add_argument("--serve-internal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.serve_internal:
        asyncio.run(run_internal_server(args.relay))
        return
    if args.probe:
        probe_healthz(args.probe, args.seconds)
        return
    calls = args.calls or ("1,2,4" if args.internal_server else "1,2,4,8,16,32")
    counts = [int(part) for part in calls.split(",") if part.strip()]
    if not counts or min(counts) < 1 or max(counts) > 64:
        parser.error("--calls takes counts between 1 and 64")
    try:
        server_cpus, client_cpus = parse_cpus(args.server_cpu), parse_cpus(args.client_cpu)
    except ValueError as exc:
        parser.error(str(exc))
    if (server_cpus or client_cpus) and not args.real_server:
        parser.error("--server-cpu and --client-cpu go with --real-server")
    if server_cpus and client_cpus and server_cpus & client_cpus:
        parser.error("--server-cpu and --client-cpu must not share a CPU")
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    server_args: tuple[str, ...] = ()
    if args.switch_interval is not None:
        server_args = ("--switch-interval", str(args.switch_interval))
    if not args.internal_server:
        from bench.media_paths import compare_paths  # it imports this module

        paths = [p for p in args.paths.split(",") if p.strip()]
        if not paths or not set(paths) <= {"encoded", "transcode"}:
            parser.error("--paths takes encoded and/or transcode")
        stop = 29.0 if args.stop_below_fps is None else args.stop_below_fps
        if args.real_server:
            asyncio.run(
                compare_real_paths(
                    paths,
                    counts,
                    args.seconds,
                    stop,
                    args.max_other_cpu,
                    args.retries,
                    server_cpus,
                )
            )
        else:
            asyncio.run(compare_paths(paths, counts, args.seconds, stop, server_args))
        return
    asyncio.run(
        run_bench(
            counts,
            args.seconds,
            10.0 if args.stop_below_fps is None else args.stop_below_fps,
            args.max_other_cpu,
            args.retries,
            ("--relay", args.relay, *server_args),
        )
    )


if __name__ == "__main__":
    main()
