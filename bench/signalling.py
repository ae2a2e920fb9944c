"""Signalling capacity: server memory per idle WebSocket session, chat relay latency under load.

    python -m bench.signalling --connections 10000

Starts the real server (``contact-center serve`` in a subprocess, as ``bench.media`` does:
temporary ``CC_VAR_DIR``, free ``CC_PORT``, loopback ICE, WARNING logs, SQLite and embedded
Valkey), with ``ceil(pairs / 3)`` advisors of text capacity 3. Then:

1. **Idle sessions**: ``--workers`` client subprocesses open ``--connections`` authenticated
   guest sessions between them (``GET /`` for the guest cookie, then ``/ws`` and ``hello``, each
   connection read by its own task so that heartbeats are answered) and hold them. The server's
   RSS (``/proc/<pid>/status``, the server process only) is read before, at every
   ``--checkpoint`` connections and once all are open; ``rss_kb_per_connection`` is the delta
   divided by the number held.
2. **Chat relay**: with those sessions still open, ``--pairs`` text contacts (guest customer and
   advisor, made by ``contact_center.tools.simulate.Simulation``) exchange chat lines at ``--rate``
   customer lines/s in total for ``--chat-seconds``; the latency of a line is from ``chat.send``
   on the customer's socket to its ``chat.message`` on the advisor's (one clock: one process).
   Each line is also persisted (SQLite) and echoed to the sender, as the server always does.

Progress on stderr; last line one JSON object. Everything on 127.0.0.1; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp

from bench.media import (
    ROOT,
    RealServer,
    cpu_seconds,
    machine_cpu_seconds,
    raise_nofile_limit,
    rss_mb,
)
from contact_center.tools.simulate import Simulation

MAX_CONNECTIONS = 20_000
OPEN_CONCURRENCY = 32  # per worker: connections being opened at once
HOLD_LIMIT_S = 900.0  # a worker never holds its connections longer than this


def progress(message: str) -> None:
    print(f"[bench.signalling {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- worker: idle sessions


async def _open_one(http: aiohttp.ClientSession, base_url: str) -> aiohttp.ClientWebSocketResponse:
    async with http.get(base_url + "/") as page:
        page.raise_for_status()
        cookie = page.cookies.get("cc_session")
    if cookie is None:
        raise RuntimeError("GET / gave no session cookie")
    ws = await http.ws_connect(
        base_url.replace("http", "ws", 1) + "/ws",
        headers={"Cookie": f"cc_session={cookie.value}"},
        heartbeat=None,
    )
    await ws.send_str(json.dumps({"v": 1, "type": "hello", "id": "1"}))
    while True:  # ack, then welcome (a guest with no contact gets nothing else)
        message = json.loads((await ws.receive(timeout=30)).data)
        if message["type"] == "error":
            raise RuntimeError(f"hello refused: {message}")
        if message["type"] == "welcome":
            return ws


async def _drain(ws: aiohttp.ClientWebSocketResponse, lost: list[int]) -> None:
    """Read until closed, so that aiohttp answers the server's pings."""
    async for _ in ws:
        pass
    lost[0] += 1


async def hold(base_url: str, count: int, hold_seconds: float) -> None:
    """Open ``count`` guest sessions, report on stdout, hold them until stdin closes."""
    raise_nofile_limit()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    jar = aiohttp.DummyCookieJar()
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    readers: list[asyncio.Task[None]] = []
    lost, failed = [0], 0
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    def report(**fields: Any) -> None:
        print(json.dumps({"open": len(sockets), "failed": failed, "lost": lost[0], **fields}),
              flush=True)  # fmt: skip

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=jar) as http:

        async def one() -> None:
            nonlocal failed
            async with gate:
                try:
                    ws = await _open_one(http, base_url)
                except Exception:
                    failed += 1
                    return
            sockets.append(ws)
            readers.append(asyncio.create_task(_drain(ws, lost), name="idle reader"))
            if len(sockets) % 250 == 0:
                report()

        await asyncio.gather(*(one() for _ in range(count)))
        report(done=True)
        loop = asyncio.get_running_loop()
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stdin_closed, hold_seconds)
        report(closing=True)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()


# ---------------------------------------------------------------------- the bench


class Workers:
    """``--workers`` subprocesses holding idle sessions; closing stdin releases them."""

    def __init__(self, base_url: str, total: int, workers: int) -> None:
        self.base_url, self.total, self.count = base_url, total, workers
        self.procs: list[asyncio.subprocess.Process] = []
        self.state: list[dict[str, Any]] = []

    async def start(self) -> None:
        share = [
            self.total // self.count + (i < self.total % self.count) for i in range(self.count)
        ]
        for n in share:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.signalling", "--hold", self.base_url,
                "--connections", str(n), "--hold-seconds", str(HOLD_LIMIT_S),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
            )  # fmt: skip
            self.procs.append(proc)
            self.state.append({"open": 0, "failed": 0, "lost": 0})

    async def follow(self, on_change: Any, timeout: float) -> None:
        """Read the workers' reports until each says done (or ``timeout``)."""

        async def read(index: int, proc: asyncio.subprocess.Process) -> None:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                self.state[index] = json.loads(line)
                on_change()
                if self.state[index].get("done"):
                    return

        async with asyncio.timeout(timeout):
            await asyncio.gather(*(read(i, p) for i, p in enumerate(self.procs)))

    def total_of(self, key: str) -> int:
        return sum(int(s.get(key, 0)) for s in self.state)

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    advisors = math.ceil(args.pairs / 3)
    async with RealServer(advisors=advisors, capacity="text:3,voice:1,video:1") as server:
        progress(f"server pid {server.pid} at {server.url}; {advisors} advisors")
        # Warm the server up (first page render, first WebSocket, lazy imports) before the
        # baseline, so that the per-session figure is not one-off start-up memory.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            for _ in range(20):
                await (await _open_one(http, server.url)).close()
        await asyncio.sleep(2)
        rss_before = rss_mb(server.pid)
        started = time.monotonic()
        cpu_start = cpu_seconds(server.pid)
        checkpoints: list[dict[str, float]] = []
        workers = Workers(server.url, args.connections, args.workers)
        await workers.start()
        next_mark = [args.checkpoint]

        def on_change() -> None:
            opened = workers.total_of("open")
            if opened >= next_mark[0]:
                rss = rss_mb(server.pid)
                checkpoints.append({"connections": opened, "server_rss_mb": round(rss, 1)})
                progress(f"{opened} sessions open, server RSS {rss:.0f} MB")
                next_mark[0] += args.checkpoint

        result: dict[str, Any] = {}
        try:
            await workers.follow(on_change, args.open_timeout)
            open_seconds = time.monotonic() - started
            open_cpu = cpu_seconds(server.pid) - cpu_start
            await asyncio.sleep(5)  # let the server settle (garbage, buffers)
            held = workers.total_of("open") - workers.total_of("lost")
            rss_after = rss_mb(server.pid)
            result.update(
                connections_wanted=args.connections,
                connections_held=held,
                connections_failed=workers.total_of("failed"),
                server_rss_mb_before=round(rss_before, 1),
                server_rss_mb_after=round(rss_after, 1),
                rss_kb_per_connection=round((rss_after - rss_before) * 1024 / max(held, 1), 1),
                # From the first checkpoint on: the cost of one more session, start-up excluded.
                rss_kb_per_connection_marginal=_marginal(checkpoints, held, rss_after),
                open_seconds=round(open_seconds, 1),
                server_cpu_ms_per_open=round(open_cpu * 1000 / max(held, 1), 2),
                checkpoints=checkpoints,
            )
            progress(
                f"{held} idle sessions held; server RSS {rss_before:.0f} -> {rss_after:.0f} MB "
                f"({result['rss_kb_per_connection']} KB each)"
            )
            if args.pairs:
                result.update(await chat_phase(server, args))
            result["connections_lost"] = workers.total_of("lost")
        finally:
            await workers.stop()
        return result


def _marginal(checkpoints: list[dict[str, float]], held: int, rss_after: float) -> float | None:
    if not checkpoints or held <= checkpoints[0]["connections"]:
        return None
    first = checkpoints[0]
    return round((rss_after - first["server_rss_mb"]) * 1024 / (held - first["connections"]), 1)


async def chat_phase(server: RealServer, args: argparse.Namespace) -> dict[str, Any]:
    progress(
        f"chat: {args.pairs} text pairs, {args.rate:.0f} lines/s for {args.chat_seconds:.0f} s"
    )
    sample: dict[str, Any] = {}

    async def measure(window: float) -> dict[str, Any]:
        start, cpu = time.monotonic(), cpu_seconds(server.pid)
        machine, client = machine_cpu_seconds(), time.process_time()
        await asyncio.sleep(window)
        wall = time.monotonic() - start
        sample.update(
            server_cpu_pct=round((cpu_seconds(server.pid) - cpu) / wall * 100, 1),
            client_cpu_pct=round((time.process_time() - client) / wall * 100, 1),
            machine_cpu_pct=round((machine_cpu_seconds() - machine) / wall * 100, 1),
        )
        return sample

    simulation = Simulation(
        server.url,
        server.advisors,
        calls=args.pairs,
        seconds=args.chat_seconds,
        channel="text",
        warmup=1.0,
        chat_rate=args.rate / args.pairs,
        chat_echo=False,
    )
    report = await simulation.run(measure=measure)
    chat = report.get("chat", {})
    return {
        "pairs": args.pairs,
        "pairs_completed": report["completed"],
        "chat_target_per_s": args.rate,
        "chat_sent_per_s": chat.get("rate_per_s"),
        "chat_sent": chat.get("sent"),
        "chat_relayed": chat.get("relayed"),
        "chat_send_errors": chat.get("send_errors"),
        "chat_out_of_order": chat.get("out_of_order"),
        "chat_relay_p50_ms": chat.get("relay_p50_ms"),
        "chat_relay_p99_ms": chat.get("relay_p99_ms"),
        "chat_errors": report["errors"],
        "chat_server_cpu_pct": sample.get("server_cpu_pct"),
        "chat_client_cpu_pct": sample.get("client_cpu_pct"),
        "chat_machine_cpu_pct": sample.get("machine_cpu_pct"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="client processes holding them")
    parser.add_argument("--checkpoint", type=int, default=2000, help="read RSS every N sessions")
    parser.add_argument("--open-timeout", type=float, default=600.0)
    parser.add_argument("--pairs", type=int, default=200, help="text contacts for the chat phase")
    parser.add_argument("--rate", type=float, default=1000.0, help="chat lines/s, all pairs")
    parser.add_argument("--chat-seconds", type=float, default=10.0)
    parser.add_argument("--hold", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--hold-seconds", type=float, default=HOLD_LIMIT_S, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold:
        asyncio.run(hold(args.hold, args.connections, min(args.hold_seconds, HOLD_LIMIT_S)))
        return
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections must be 1 to {MAX_CONNECTIONS}")
    if not 1 <= args.workers <= 16 or not 0 <= args.pairs <= 1000:
        parser.error("--workers 1-16, --pairs 0-1000")
    if not 0 < args.chat_seconds <= 120 or not 0 < args.rate <= 10_000:
        parser.error("--chat-seconds up to 120, --rate up to 10000")
    hard = raise_nofile_limit()
    # The server holds one descriptor per session plus its own; the bench's workers share the rest.
    if args.connections + 1000 > hard:
        parser.error(f"the open-files hard limit is {hard}: at most {hard - 1000} connections")
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = asyncio.run(run_bench(args))
    result["cpus"] = os.cpu_count()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
