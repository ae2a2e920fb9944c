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
   Each line is also persisted (SQLite, or PostgreSQL with ``--database-url``: a database of
   the bench's own, dropped afterwards) and echoed to the sender, as the server always does.
3. **Ceiling** (before the chat relay, same pairs, rate, clients and measure): a bare aiohttp
   WebSocket relay in a subprocess of its own (``--bare-relay``): ``hello`` answered, each
   customer line answered with an ack and sent as a ``chat.message`` to both sockets of its
   pair; nothing stored, no Redis. ``ceiling_ratio`` is the relay's lines/s over the bare
   relay's; ``cpu_ratio`` the bare relay's server CPU per line over the real server's (the share
   of the bare ceiling's capacity the real server has). The load average is read at both ends.

``--server-cpu N --client-cpu M`` pin the server (every thread; the ones it starts later inherit
it) and the bare relay to CPU N, and this process, its client workers and the embedded Valkey to
CPU M (``os.sched_setaffinity``; PostgreSQL, not ours, is left where the kernel puts it).

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
from aiohttp import WSMsgType

from bench.media import (
    ROOT,
    RealServer,
    cpu_seconds,
    free_port,
    machine_cpu_seconds,
    raise_nofile_limit,
    rss_mb,
)
from bench.pgscratch import scratch_database
from contact_center.server import heap
from contact_center.tools.simulate import Simulation, parse_line, stamp_line
from contact_center.tools.wsclient import RequestFailed, SignallingClient

MAX_CONNECTIONS = 20_000
OPEN_CONCURRENCY = 32  # per worker: connections being opened at once
HOLD_LIMIT_S = 900.0  # a worker never holds its connections longer than this


def pin(pid: int, cpu: int | None) -> None:
    """Pin every thread of ``pid`` to ``cpu`` (threads it starts afterwards inherit it)."""
    if cpu is None:
        return
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), {cpu})


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


# ---------------------------------------------------------------------- the ceiling


def bare_relay(port: int) -> None:
    """Serve the bare relay on 127.0.0.1:``port`` (``/ws?pair=N``, first socket of a pair the
    customer) until killed: the least a WebSocket chat relay in aiohttp does."""
    from aiohttp import web

    pairs: dict[str, list[web.WebSocketResponse]] = {}
    seqs: dict[str, int] = {}

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        pair = request.query["pair"]
        sockets = pairs.setdefault(pair, [])
        sockets.append(ws)
        customer = len(sockets) == 1
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message["type"] == "hello":
                await ws.send_str(json.dumps({"type": "ack", "ref": message["id"]}))
                await ws.send_str(json.dumps({"type": "welcome", "user": pair}))
                continue
            if message["type"] != "chat.send" or not customer:
                continue
            seqs[pair] = seq = seqs.get(pair, 0) + 1
            await ws.send_str(
                json.dumps({"type": "ack", "ref": message["id"], "data": {"seq": seq}})
            )
            line = json.dumps({
                "type": "chat.message", "contact_id": pair, "seq": seq, "sender": "customer",
                "text": message["text"], "at": time.time(),
            })  # fmt: skip
            for other in list(sockets):
                await other.send_str(line)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.on_startup.append(heap.freeze_after_start)  # as the real server does
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def ceiling_phase(args: argparse.Namespace) -> dict[str, Any]:
    """The same lines through the bare relay: the same clients, rate, stagger and clock."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.signalling", "--bare-relay", str(port), cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    relay_ms: list[float] = []
    sent = errors = relayed = out_of_order = 0
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.ws_connect(url + "/ws?pair=probe"):
                        break
                await asyncio.sleep(0.1)
        pin(proc.pid, args.server_cpu)
        clients: list[tuple[SignallingClient, SignallingClient]] = []
        for n in range(args.pairs):
            pair = []
            for _ in range(2):
                client = SignallingClient(url)
                await client.connect(url.replace("http", "ws", 1) + f"/ws?pair={n}")
                pair.append(client)
            clients.append((pair[0], pair[1]))
        rate = args.rate / args.pairs
        count = max(1, int(args.chat_seconds * rate))

        async def one(index: int, customer: SignallingClient, advisor: SignallingClient) -> None:
            nonlocal sent, errors, relayed, out_of_order

            async def send(text: str) -> None:
                nonlocal errors
                try:
                    await customer.request("chat.send", contact_id=str(index), text=text)
                except (RequestFailed, TimeoutError, ConnectionError):
                    errors += 1

            async def reads() -> None:
                nonlocal relayed, out_of_order
                last = -1
                while True:
                    message = await advisor.wait_for("chat.message", timeout=HOLD_LIMIT_S)
                    parsed = parse_line(message.get("text", ""))
                    if parsed is None:
                        continue
                    relayed += 1
                    relay_ms.append((time.monotonic_ns() - parsed[3]) / 1e6)
                    out_of_order += parsed[2] <= last
                    last = max(last, parsed[2])

            async with asyncio.TaskGroup() as tasks:
                reader = tasks.create_task(reads())
                start = time.monotonic() + (index / args.pairs) / rate
                for n in range(count):
                    delay = start + n / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if time.monotonic() - start > args.chat_seconds:
                        break
                    sent += 1
                    tasks.create_task(send(stamp_line("sim", index, n)))
                await asyncio.sleep(min(2.0, args.chat_seconds / 4))
                reader.cancel()

        load_before = os.getloadavg()[0]
        cpu, started = cpu_seconds(proc.pid), time.monotonic()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*(one(i, c, a) for i, (c, a) in enumerate(clients)))
        wall = time.monotonic() - started
        server_cpu = cpu_seconds(proc.pid) - cpu
        for customer, advisor in clients:
            await customer.close()
            await advisor.close()
    finally:
        proc.kill()
        await proc.wait()
    relay_ms.sort()
    return {
        "ceiling_sent": sent,
        "ceiling_relayed": relayed,
        "ceiling_send_errors": errors,
        "ceiling_out_of_order": out_of_order,
        "ceiling_relay_p50_ms": _quantile(relay_ms, 0.5),
        "ceiling_relay_p99_ms": _quantile(relay_ms, 0.99),
        "ceiling_server_cpu_pct": round(server_cpu / wall * 100, 1),
        "ceiling_server_cpu_us_per_line": round(server_cpu * 1e6 / max(relayed, 1), 1),
        "ceiling_load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


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
    if not args.database_url:
        return await _run_bench(args, {})
    async with scratch_database(args.database_url, "cc_bench_signalling") as url:
        return await _run_bench(args, {"CC_DATABASE_URL": url})


async def _run_bench(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    advisors = math.ceil(args.pairs / 3)
    ceiling = await ceiling_phase(args) if args.pairs and args.ceiling else {}
    if ceiling:
        progress(
            f"ceiling: {ceiling['ceiling_relayed']} of {ceiling['ceiling_sent']} relayed, p50/p99 "
            f"{ceiling['ceiling_relay_p50_ms']}/{ceiling['ceiling_relay_p99_ms']} ms, "
            f"{ceiling['ceiling_server_cpu_us_per_line']} µs server CPU per line"
        )
    cpus = None if args.server_cpu is None else {args.server_cpu}
    async with RealServer(
        advisors=advisors, capacity="text:3,voice:1,video:1", env=env, cpus=cpus
    ) as server:
        progress(f"server pid {server.pid} at {server.url}; {advisors} advisors")
        valkey = server.valkey_pid()  # started by the server on its CPU: moved to the clients'
        if valkey is not None:
            pin(valkey, args.client_cpu)
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
                result.update(ceiling)
                result["database"] = "postgresql" if env else "sqlite"
                if ceiling:
                    result["ceiling_ratio"] = _ratio(
                        result["chat_relayed"], ceiling["ceiling_relayed"]
                    )
                    result["cpu_ratio"] = _ratio(
                        ceiling["ceiling_server_cpu_us_per_line"],
                        result["chat_server_cpu_us_per_line"],
                    )
            result["connections_lost"] = workers.total_of("lost")
        finally:
            await workers.stop()
        return result


def _ratio(part: float | None, whole: float | None) -> float | None:
    return round(part / whole, 3) if part and whole else None


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
        sample["load_before"] = os.getloadavg()[0]
        start, cpu = time.monotonic(), cpu_seconds(server.pid)
        machine, client = machine_cpu_seconds(), time.process_time()
        await asyncio.sleep(window)
        wall = time.monotonic() - start
        sample.update(
            server_cpu_s=cpu_seconds(server.pid) - cpu,
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
    # The clients' own full garbage collections (up to 80 ms over this process's sessions
    # held and advisors) would count as relay latency: their heap so far is frozen too.
    heap.freeze()
    report = await simulation.run(measure=measure)
    chat = report.get("chat", {})
    relayed = chat.get("relayed") or 0
    return {
        "pairs": args.pairs,
        "pairs_completed": report["completed"],
        "chat_target_per_s": args.rate,
        "chat_sent_per_s": chat.get("rate_per_s"),
        "chat_sent": chat.get("sent"),
        "chat_relayed": chat.get("relayed"),
        "chat_send_errors": chat.get("send_errors"),
        "chat_busy": chat.get("busy"),
        "chat_out_of_order": chat.get("out_of_order"),
        "chat_relay_p50_ms": chat.get("relay_p50_ms"),
        "chat_relay_p99_ms": chat.get("relay_p99_ms"),
        "chat_errors": report["errors"],
        "chat_server_cpu_pct": sample.get("server_cpu_pct"),
        # the measured window is the sending one (warm-up and drain excluded), so per line it
        # is taken over the lines sent in it
        "chat_server_cpu_us_per_line": round(sample.get("server_cpu_s", 0) * 1e6 / relayed, 1)
        if relayed
        else None,
        "chat_load_average": [round(sample.get("load_before", 0), 2), round(os.getloadavg()[0], 2)],
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
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server (a database of its own "
        "is made and dropped), e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument(
        "--no-ceiling", dest="ceiling", action="store_false", help="skip the bare relay ceiling"
    )
    parser.add_argument("--server-cpu", type=int, help="pin the server and the bare relay here")
    parser.add_argument("--client-cpu", type=int, help="pin the clients and Valkey here")
    parser.add_argument("--hold", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--bare-relay", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--hold-seconds", type=float, default=HOLD_LIMIT_S, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_relay:
        bare_relay(args.bare_relay)
        return
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
    if (args.server_cpu is None) != (args.client_cpu is None):
        parser.error("--server-cpu and --client-cpu go together")
    pin(os.getpid(), args.client_cpu)  # the workers and servers started from here inherit it
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = asyncio.run(run_bench(args))
    result["cpus"] = os.cpu_count()
    result["server_cpu"], result["client_cpu"] = args.server_cpu, args.client_cpu
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
