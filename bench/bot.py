"""Bot turn latency over the WebSocket: `python -m bench.bot [--turns 100] [--url URL]`.

One guest customer (``--conversations N``: N at once, each pausing about ``--think-s`` between
a reply and its next line) starts a session (the bot greets), then sends chat lines one after
the other; a turn is measured from sending ``chat.send`` to the first ``chat.message`` of sender
``bot`` coming back. That covers the signalling, persisting the customer line, the Rasa turn
(NLU, policies, the custom action), persisting and delivering the reply. For comparison the
same lines are also sent straight to Rasa the way the gateway sends them (``rasa_direct``: the
contact center's channel, ``RasaClient.turn``), so the difference is what the contact center
adds.

Without ``--url`` it runs everything itself on loopback: the Rasa servers (chatbot.services, or
``--rasa-url`` when one answers), ``contact-center db upgrade`` and ``contact-center serve`` with a
temporary CC_VAR_DIR and CC_RASA_URL pointing at them. Until ``create_app`` wires the bot gateway
(contact_center.server.contexts.bot_ctx), the server is this module with ``--serve-child``: the same app
plus that cleanup context. Progress on stderr; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from chatbot.classify import rasa_server
from chatbot.client import RasaClient
from chatbot.services import free_port
from contact_center.tools.synthetic import quantile
from contact_center.tools.wsclient import SignallingClient

ROOT = Path(__file__).resolve().parent.parent
#: Turns sent before measuring: Rasa's first webhook calls load lazily (up to ~1 s).
WARMUP = 3
#: Lines the bot answers without handing off, in the three languages (nothing from training).
LINES = [
    "what time do you open on saturday",
    "你们周末营业吗",
    "你哋星期六幾點閂門",
    "what's the euro rate today",
    "美元今天换多少港币",
    "日元而家幾多錢",
    "how much does it cost to send rmb to the mainland",
    "汇人民币去内地有什么限额",
    "匯錢返大陸要幾多手續費",
    "hello there",
]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50_ms": round(quantile(values, 0.50) or 0.0, 1),
        "p90_ms": round(quantile(values, 0.90) or 0.0, 1),
        "p99_ms": round(quantile(values, 0.99) or 0.0, 1),
        "max_ms": round(max(values), 1),
        "mean_ms": round(statistics.fmean(values), 1),
    }


# ---------------------------------------------------------------------- measurement


async def _start(customer: SignallingClient, language: str) -> str:
    started = await customer.request("session.start", channels=["text"], language=language)
    if started["state"] != "bot":
        raise RuntimeError(f"the server did not give the session to the bot (state "
                           f"{started['state']}): is Rasa up and the bot gateway wired?")
    contact_id = str(started["contact_id"])
    await customer.wait_for("chat.message", contact_id=contact_id, sender="bot", timeout=30)
    return contact_id


async def _conversation(url: str, turns: int, deadline: float, language: str,
                        per_session: int, think_s: float, seed: int,
                        latencies: list[float]) -> int:
    """One customer: bot turns one after the other (a pause of about ``think_s`` between a
    reply and the next line), a new session every ``per_session`` turns (Rasa's turn cost grows
    with the conversation's length). Each turn's latency (ms) goes into ``latencies``; returns
    the handoffs."""
    rng = random.Random(seed)
    customer = SignallingClient(url)
    handoffs = 0
    try:
        await customer.as_guest()
        await customer.connect()
        contact_id = await _start(customer, language)
        for i in range(-WARMUP, turns):
            if time.monotonic() > deadline:
                break
            if think_s and i > -WARMUP:
                await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
            started = time.perf_counter()
            ack = asyncio.create_task(customer.request(
                "chat.send", contact_id=contact_id, text=LINES[(i + seed) % len(LINES)], timeout=30))
            await customer.wait_for("chat.message", contact_id=contact_id, sender="bot", timeout=30)
            if i >= 0:
                latencies.append((time.perf_counter() - started) * 1000)
            await ack
            handed_off = [m for m in customer.seen if m["type"] == "session.state"
                          and m["contact_id"] == contact_id and m["state"] != "bot"]
            customer.seen.clear()
            handoffs += bool(handed_off)  # a misunderstood line ended the bot conversation
            if handed_off or (i + 1) % per_session == 0:
                with contextlib.suppress(Exception):
                    await customer.request("session.end", contact_id=contact_id)
                contact_id = await _start(customer, language)
    finally:
        await customer.close()
    return handoffs


async def measure_ws(url: str, turns: int, deadline: float, language: str,
                     per_session: int, conversations: int = 1,
                     think_s: float = 0.0) -> dict[str, Any]:
    """Bot turns through the contact center's WebSocket: ``conversations`` customers at once,
    ``turns`` in all; turns/s over the time they took."""
    share = -(-turns // conversations)
    latencies: list[float] = []

    async def progress() -> None:
        while True:
            await asyncio.sleep(5)
            _log(f"{len(latencies)} turns, p50 {quantile(latencies, 0.5) or 0.0:.1f} ms, "
                 f"p99 {quantile(latencies, 0.99) or 0.0:.1f} ms")

    reporter = asyncio.create_task(progress())
    started = time.monotonic()
    try:
        handoffs = await asyncio.gather(*(
            _conversation(url, share, deadline, language, per_session, think_s, seed, latencies)
            for seed in range(conversations)
        ))
    finally:
        reporter.cancel()
    took = time.monotonic() - started
    if len(latencies) < conversations * share:
        _log(f"time bound reached after {len(latencies)} turns")
    return {
        "conversations": conversations,
        "think_s": think_s,
        "turns": len(latencies),
        "turns_per_s": round(len(latencies) / took, 1) if took else None,
        "handoffs": sum(handoffs),
        **summary(latencies),
    }


async def measure_direct(rasa_url: str, turns: int, deadline: float, per_session: int,
                         conversations: int = 1, think_s: float = 0.0) -> dict[str, Any]:
    """The same lines straight to Rasa, as many conversations at once, asked as the gateway asks
    (``RasaClient.turn``: the contact center's channel, messages and parse in one call): the
    bot's own share of a turn."""
    share = -(-turns // conversations)
    latencies: list[float] = []

    async def conversation(client: RasaClient, seed: int) -> None:
        rng = random.Random(seed)
        for i in range(-WARMUP, share):
            if time.monotonic() > deadline:
                break
            if think_s and i > -WARMUP:
                await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
            if i == -WARMUP or i % per_session == 0:
                sender = f"bench-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            await client.turn(sender, LINES[(i + seed) % len(LINES)], metadata={"language": "en"})
            if i >= 0:
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        client = RasaClient(rasa_url, session=http, timeout=30)
        await asyncio.gather(*(conversation(client, seed) for seed in range(conversations)))
    took = time.monotonic() - started
    return {
        "turns": len(latencies),
        "turns_per_s": round(len(latencies) / took, 1) if took else None,
        **summary(latencies),
    }


# ---------------------------------------------------------------------- the server


def _bot_wired() -> bool:
    """True when create_app itself puts the bot gateway in (no --serve-child needed)."""
    from contact_center.config import load_settings
    from contact_center.server.app import create_app
    from contact_center.server.contexts import bot_ctx

    with tempfile.TemporaryDirectory() as var:
        app = create_app(load_settings(var_dir=var, secret_key="x" * 40))
        return bot_ctx in app.cleanup_ctx


def serve_child() -> int:
    """The real app plus the bot gateway, for as long as create_app does not add it itself."""
    from aiohttp import web

    from contact_center.config import load_settings
    from contact_center.server.app import create_app
    from contact_center.server.contexts import bot_ctx
    from contact_center.server.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    app = create_app(settings)
    if bot_ctx not in app.cleanup_ctx:
        app.cleanup_ctx.append(bot_ctx)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


@contextlib.contextmanager
def app_server(rasa_url: str) -> Iterator[str]:
    """`contact-center serve` (or --serve-child) on a free loopback port with a fresh var dir."""
    with tempfile.TemporaryDirectory(prefix="cc-bench-bot-") as var:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
        env.update(CC_VAR_DIR=var, CC_PORT=str(port), CC_HOST="127.0.0.1", CC_RASA_URL=rasa_url,
                   CC_LOG_LEVEL="WARNING", CC_WS_RATE_PER_S="1000", CC_WS_BURST="1000",
                   # the bench's customers are guests on one address
                   CC_GUEST_CONTACTS_PER_ADDRESS="100000")
        for key in ("CC_CACHE_DIR", "CC_RASA_PYTHON"):  # where the Rasa env is cached
            if key in os.environ:
                env[key] = os.environ[key]
        subprocess.run([sys.executable, "-m", "contact_center", "db", "upgrade"], env=env,
                       cwd=ROOT, check=True, capture_output=True)
        if _bot_wired():
            command = [sys.executable, "-m", "contact_center", "serve"]
        else:
            _log("create_app does not wire the bot gateway yet: serving with --serve-child")
            command = [sys.executable, "-m", "bench.bot", "--serve-child"]
        log = Path(var) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, proc, log)
            yield url
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server not ready within {timeout} s:\n{log.read_text()[-2000:]}")


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bot", description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=100, help="bot turns to measure (100)")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="stop measuring after this long (120)")
    parser.add_argument("--turns-per-session", type=int, default=10,
                        help="customer lines per conversation before a new one starts (10)")
    parser.add_argument("--language", default="en", choices=["en", "zh", "yue"],
                        help="language the customer picks (lines are in all three)")
    parser.add_argument("--conversations", type=int, default=1,
                        help="customers talking to the bot at once (1)")
    parser.add_argument("--think-s", type=float, default=0.0,
                        help="mean pause of a customer between a reply and their next line, "
                        "uniform in 0.5-1.5 times it (0: back to back)")
    parser.add_argument("--url", help="a running contact center (with its bot); default: start one")
    parser.add_argument("--rasa-url", help="a running Rasa server; default: start one")
    parser.add_argument("--serve-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_child:
        return serve_child()

    with contextlib.ExitStack() as stack:
        rasa_url = args.rasa_url
        if args.url is None:
            rasa_url = stack.enter_context(rasa_server(args.rasa_url))
            _log(f"Rasa at {rasa_url}; starting the contact center")
            url = stack.enter_context(app_server(rasa_url))
        else:
            url = args.url.rstrip("/")
        _log(f"measuring {args.turns} bot turns through {url}/ws, {args.conversations} "
             f"conversation(s) at once")
        deadline = time.monotonic() + args.max_seconds
        load_before = os.getloadavg()[0]
        result: dict[str, Any] = {
            "bench": "bot_turn",
            "language": args.language,
            "turns_per_session": args.turns_per_session,
            "url": url if args.url else "started here",
            "websocket": asyncio.run(measure_ws(url, args.turns, deadline, args.language,
                                               args.turns_per_session, args.conversations,
                                               args.think_s)),
        }
        if rasa_url:
            result["rasa_direct"] = asyncio.run(
                measure_direct(rasa_url, args.turns, time.monotonic() + args.max_seconds / 2,
                               args.turns_per_session, args.conversations, args.think_s))
        result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
