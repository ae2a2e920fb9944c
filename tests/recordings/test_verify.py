"""verify: every kind of tampering is found and named; purges are not mistaken for it."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings.ledger import LedgerEntry
from recordings.retention import RetentionPolicy, purge
from recordings.seal import seal_contact
from recordings.storage import LocalStorage
from recordings.verify import verify
from tests.recordings.sealing import record_contact, sessions  # noqa: F401

CONTACTS = ["c0", "c1", "c2"]
TABLE = LedgerEntry.__table__  # type: ignore[attr-defined]


async def _sealed(root: Path, db: async_sessionmaker[AsyncSession]) -> None:
    for contact in CONTACTS:
        await seal_contact(record_contact(root / contact), db, metadata={"topic": "t"})


async def _rows(db: async_sessionmaker[AsyncSession]) -> list[dict[str, object]]:
    async with db() as session:
        result = await session.execute(sa.select(TABLE).order_by(TABLE.c.seq))
        return [dict(row._mapping) for row in result]


async def _restore(db: async_sessionmaker[AsyncSession], rows: list[dict[str, object]]) -> None:
    async with db() as session:
        await session.execute(sa.delete(TABLE))
        await session.execute(sa.insert(TABLE), rows)
        await session.commit()


async def test_seal_then_verify_passes_with_jobs(tmp_path: Path, sessions: async_sessionmaker[AsyncSession]) -> None:  # noqa: F811
    await _sealed(tmp_path / "rec", sessions)
    storage = LocalStorage(tmp_path / "rec")
    for jobs in (1, 2):
        report = await verify(sessions, storage, jobs=jobs)
        assert report.ok, report.problems
        assert report.contacts == 3 and report.files == 9 and report.bytes_hashed > 0
    only = await verify(sessions, storage, contact_id="c1")
    assert only.ok and only.contacts == 1 and only.files == 3
    later = await verify(sessions, storage, since=datetime.now(UTC) + timedelta(hours=1))
    assert later.ok and later.contacts == 0


async def test_tampering_is_always_found(tmp_path: Path, sessions: async_sessionmaker[AsyncSession]) -> None:  # noqa: F811
    seed = random.randrange(1 << 30)
    print(f"tamper seed {seed}")
    rng = random.Random(seed)
    root = tmp_path / "rec"
    await _sealed(root, sessions)
    pristine = tmp_path / "pristine"
    shutil.copytree(root, pristine)
    storage = LocalStorage(root)
    rows = await _rows(sessions)
    assert (await verify(sessions, storage)).ok
    kinds = ["flip", "flip", "flip", "truncate", "delete", "add", "row-flip", "row-delete",
             "row-insert", "row-swap"]
    for trial in range(40):
        kind = kinds[trial % len(kinds)] if trial < len(kinds) else rng.choice(kinds)
        contact = rng.choice(CONTACTS)
        names = sorted(p.name for p in (root / contact).iterdir())
        name = rng.choice(names)
        path = root / contact / name
        expect_file: str | None = name
        if kind == "flip":
            data = bytearray(path.read_bytes())
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(data))
        elif kind == "truncate":
            data = path.read_bytes()
            path.write_bytes(data[: rng.randrange(len(data))])
        elif kind == "delete":
            path.unlink()
        elif kind == "add":
            expect_file = "extra.bin"
            (root / contact / expect_file).write_bytes(b"x")
        else:
            expect_file = None
            index = CONTACTS.index(contact)
            changed = [dict(row) for row in rows]
            if kind == "row-flip":
                field = rng.choice(["contact_id", "manifest_hash", "prev_hash", "entry_hash"])
                value = str(changed[index][field])
                at = rng.randrange(len(value))
                changed[index][field] = value[:at] + ("0" if value[at] != "0" else "1") + value[at + 1 :]
                if field == "contact_id":
                    contact = str(changed[index][field])
            elif kind == "row-delete":
                del changed[index]
            elif kind == "row-insert":
                extra = dict(changed[index], seq=len(changed) + 1, entry_hash="f" * 64)
                changed.append(extra)
            else:  # swap two rows' contents, keeping their sequence numbers
                other = (index + 1) % len(changed)
                a, b = dict(changed[index]), dict(changed[other])
                changed[index] = dict(b, seq=a["seq"])
                changed[other] = dict(a, seq=b["seq"])
            await _restore(sessions, changed)
        report = await verify(sessions, storage)
        assert not report.ok, (seed, trial, kind, contact, name)
        if kind.startswith("row"):
            named = {p.contact_id for p in report.problems} | {
                str(p) for p in report.problems if p.contact_id is None
            }
            assert contact in named or (kind in ("row-delete", "row-insert") and named), (
                seed, trial, kind, report.problems,
            )
        else:
            assert any(p.contact_id == contact and p.name == expect_file for p in report.problems), (
                seed, trial, kind, contact, expect_file, report.problems,
            )
        # Undo the damage, and check that the undo is clean.
        shutil.rmtree(root)
        shutil.copytree(pristine, root)
        await _restore(sessions, rows)
        assert (await verify(sessions, storage)).ok, (seed, trial)


async def test_verify_after_purge(tmp_path: Path, sessions: async_sessionmaker[AsyncSession]) -> None:  # noqa: F811
    root = tmp_path / "rec"
    policy = RetentionPolicy.from_strings("7y", {"short": "6m"})
    old = datetime.now(UTC) - timedelta(days=400)
    await seal_contact(record_contact(root / "old"), sessions, topic="short", policy=policy, sealed_at=old)
    await seal_contact(record_contact(root / "new"), sessions, policy=policy)
    storage = LocalStorage(root)
    report = await purge(sessions, storage)
    assert sorted(report.purged) == ["old"] and len(report.purged["old"]) == 4
    assert not (root / "old").exists() and (root / "new").exists()
    assert (await verify(sessions, storage)).ok
    (root / "new" / "timeline.jsonl").unlink()  # deleted outside a purge
    problems = (await verify(sessions, storage)).problems
    assert [(p.contact_id, p.name) for p in problems] == [("new", "timeline.jsonl")]
