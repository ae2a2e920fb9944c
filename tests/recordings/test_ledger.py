"""The ledger chain: hashes, head row, and one unbroken line under concurrent appenders."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings.ledger import (
    GENESIS,
    append_purge,
    append_seal,
    chain_head,
    compute_entry_hash,
    entries,
)
from tests.recordings.sealing import ROOT, database_urls, make_tables, sessions  # noqa: F401


async def test_entries_chain_and_head(sessions: async_sessionmaker[AsyncSession]) -> None:  # noqa: F811
    at = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)
    first = await append_seal(
        sessions, contact_id="c1", manifest_hash="a" * 64, status="complete",
        locations={"manifest.json": "local:c1/manifest.json"}, retain_until=None, sealed_at=at,
    )
    second = await append_purge(sessions, contact_id="c1", files=["x.webm"], actor="ops")
    rows = await entries(sessions)
    assert [r.seq for r in rows] == [1, 2] and rows[0].prev_hash == GENESIS
    assert rows[1].prev_hash == first.entry_hash and rows[1].detail["files"] == ["x.webm"]
    assert rows[0].sealed_at == at and rows[0].sealed_at.tzinfo is not None
    assert rows[0].entry_hash == compute_entry_hash(1, "seal", "c1", "a" * 64, GENESIS, at)
    head = await chain_head(sessions)
    assert head is not None and head.seq == 2 and head.entry_hash == second.entry_hash
    assert [r.seq for r in await entries(sessions, kind="purge")] == [2]
    async with sessions() as session:  # a caller's own transaction
        await append_seal(session, contact_id="c2", manifest_hash="b" * 64, status="incomplete",
                          locations={}, retain_until=None)
        await session.commit()
    assert [r.contact_id for r in await entries(sessions, contact_id="c2")] == ["c2"]


async def test_two_processes_seal_one_unbroken_chain(tmp_path: Path) -> None:
    for url in database_urls(tmp_path):
        engine = await make_tables(url)
        try:
            worker = str(Path(__file__).with_name("seal_worker.py"))
            procs = [
                subprocess.Popen([sys.executable, worker, url, name, "100"], cwd=ROOT)  # noqa: ASYNC220 - started at once, awaited in a thread
                for name in ("p1", "p2")
            ]
            assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
            sessions_ = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
            rows = await entries(sessions_)
            assert [r.seq for r in rows] == list(range(1, 201)), url  # no gaps
            assert len({r.contact_id for r in rows}) == 200
            previous = GENESIS
            for row in rows:  # one line: each entry links to the one before, no forks
                assert row.prev_hash == previous, (url, row.seq)
                assert row.entry_hash == compute_entry_hash(
                    row.seq, row.kind, row.contact_id, row.manifest_hash, row.prev_hash,
                    row.sealed_at,
                )
                previous = row.entry_hash
            assert len({r.prev_hash for r in rows}) == 200
            head = await chain_head(sessions_)
            assert head is not None and (head.seq, head.entry_hash) == (200, previous)
        finally:
            await engine.dispose()
