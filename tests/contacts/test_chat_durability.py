"""Group commit keeps "persisted before acknowledged": a server process killed with SIGKILL in
the middle of a chat load has stored every line it acknowledged, once, with its seq and text.

A real ``contact-center serve`` subprocess (``bench.media.RealServer``: SQLite, or PostgreSQL in
a database of the test's own when ``CC_TEST_DATABASE_URL`` is set; its embedded Valkey dies with
it), guests whose contacts wait in the queue (chat is open while queued) sending numbered lines
as fast as their acks come back, and the kill once a few hundred lines are acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, select

from bench.media import RealServer
from bench.pgscratch import scratch_database
from contact_center.db.engine import create_engine, session_factory, transaction
from contact_center.db.models import ChatMessage
from contact_center.tools.wsclient import RequestFailed, SignallingClient

pytestmark = pytest.mark.timeout(240)

CUSTOMERS = 24
KILL_AFTER_ACKS = 400


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[dict[str, str]]:
    server_url = os.environ.get("CC_TEST_DATABASE_URL")
    if not server_url:
        yield {}
        return
    async with scratch_database(server_url, "cc_test_chat_kill") as url:
        yield {"CC_DATABASE_URL": url}


async def test_every_acknowledged_line_is_stored_after_a_kill_under_chat_load():
    acked: dict[tuple[str, str], tuple[int, str]] = {}  # (contact, request id) -> (seq, text)
    enough = asyncio.Event()
    async with _database() as env:
        env = {**env, "CC_GUEST_CONTACTS_PER_ADDRESS": "1000"}
        async with RealServer(advisors=0, env=env) as server:
            clients = [SignallingClient(server.url) for _ in range(CUSTOMERS)]
            contacts: list[str] = []
            for client in clients:
                await client.as_guest()
                await client.connect()
                started = await client.request(
                    "session.start", channels=["text"], language="en", skip_bot=True
                )
                contacts.append(started["contact_id"])

            async def talk(index: int, client: SignallingClient, contact_id: str) -> None:
                n = 0
                while True:
                    n += 1
                    request_id, text = f"kill-{index}-{n}", f"line {index} {n} of the load"
                    try:
                        data = await client.request(
                            "chat.send", contact_id=contact_id, text=text, request_id=request_id,
                            timeout=5,
                        )
                    except RequestFailed as exc:
                        assert exc.code == "busy", exc  # the only refusal this load may get
                        continue
                    except (ConnectionError, TimeoutError, RuntimeError):
                        return  # the server is gone
                    acked[(contact_id, request_id)] = (data["seq"], text)
                    if len(acked) >= KILL_AFTER_ACKS:
                        enough.set()

            talkers = [
                asyncio.create_task(talk(i, c, contact_id))
                for i, (c, contact_id) in enumerate(zip(clients, contacts, strict=True))
            ]
            try:
                await asyncio.wait_for(enough.wait(), 120)
                os.kill(server.pid, signal.SIGKILL)
                await asyncio.wait_for(asyncio.gather(*talkers), 30)
            finally:
                for task in talkers:
                    task.cancel()
                for client in clients:
                    with contextlib.suppress(Exception):
                        await client.close()
            database_url = env.get(
                "CC_DATABASE_URL", f"sqlite+aiosqlite:///{server.var_dir / 'contact_center.db'}"
            )
            engine = create_engine(database_url)
            try:
                async with transaction(session_factory(engine)) as session:
                    rows = (
                        await session.exec(
                            select(ChatMessage).where(col(ChatMessage.contact_id).in_(contacts))
                        )
                    ).all()
            finally:
                await engine.dispose()
    customer_lines = [m for m in rows if m.request_id is not None]
    stored = {(m.contact_id, m.request_id): (m.seq, m.text) for m in customer_lines}
    assert len(acked) >= KILL_AFTER_ACKS
    missing = {key: value for key, value in acked.items() if stored.get(key) != value}
    assert missing == {}, f"{len(missing)} acknowledged lines not stored as acknowledged"
    assert len(stored) == len(customer_lines), "a request id stored twice"
    for contact_id in contacts:  # each contact's lines numbered 1..n without a gap
        seqs = sorted(m.seq for m in rows if m.contact_id == contact_id)
        assert seqs == list(range(1, len(seqs) + 1))
