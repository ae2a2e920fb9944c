"""The recordings ledger: one hash chain of seal and purge entries, in the database.

``recording_ledger`` holds one row per entry, ``seq`` 1, 2, 3... without gaps;
``entry_hash = sha256(canonical_json({seq, kind, contact_id, manifest_hash, prev_hash,
sealed_at}))`` with ``sealed_at`` as ISO 8601 UTC with microseconds, and ``prev_hash`` the
previous entry's ``entry_hash`` (``GENESIS`` for the first). ``recording_chain_head`` is one row
(``id`` 1) with the last ``seq`` and ``entry_hash``.

One line, never a fork, with several processes appending: an append first *updates* the head
row (``UPDATE ... SET seq = seq + 1 RETURNING seq, entry_hash``), which takes the row's write
lock on PostgreSQL and the database's write lock on SQLite, so the next sequence number and
the previous hash are read under the lock; the entry is inserted and the head moved to its
hash in the same transaction. A second appender waits at its UPDATE until the first commits.

``locations``, ``retain_until`` and the legal hold fields are not hashed: they change after
sealing (upload, hold). ``verify`` checks ``status`` and ``locations`` against the manifest.

For a purge entry ``manifest_hash`` is the hash of ``detail`` (``{"contact_id", "files"}``,
canonical JSON), so the purged names are covered by the chain too.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.types import TypeDecorator
from sqlmodel import Column, Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings.manifest import canonical_json

__all__ = [
    "GENESIS",
    "ChainHead",
    "Db",
    "LedgerEntry",
    "append_purge",
    "append_seal",
    "canonical_time",
    "chain_head",
    "compute_entry_hash",
    "entries",
    "purge_detail_hash",
    "set_locations",
]

GENESIS = "0" * 64
Kind = Literal["seal", "purge"]
Db = AsyncSession | async_sessionmaker[AsyncSession]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite returns naive ones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the ledger stores timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LedgerEntry(SQLModel, table=True):
    """One entry of the chain (a seal or a purge of one contact's files)."""

    __tablename__ = "recording_ledger"

    seq: int = Field(sa_column=Column(sa.Integer, primary_key=True, autoincrement=False))
    kind: str = Field(max_length=8)
    contact_id: str = Field(max_length=64, index=True)
    manifest_hash: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64, unique=True)
    status: str = Field(max_length=16)
    sealed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    locations: dict[str, str] = Field(default_factory=dict, sa_column=Column(sa.JSON))
    retain_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(sa.JSON))
    held: bool = False
    hold_reason: str | None = Field(default=None, max_length=512)
    held_by: str | None = Field(default=None, max_length=80)
    held_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class ChainHead(SQLModel, table=True):
    """The one row naming the chain's last entry."""

    __tablename__ = "recording_chain_head"

    id: int = Field(sa_column=Column(sa.Integer, primary_key=True, autoincrement=False))
    seq: int = 0
    entry_hash: str = Field(default=GENESIS, max_length=64)


def canonical_time(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds: ``2026-12-02T10:00:00.000000+00:00``."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def compute_entry_hash(
    seq: int, kind: str, contact_id: str, manifest_hash: str, prev_hash: str, sealed_at: datetime
) -> str:
    """The entry hash over the fields the chain protects."""
    body = {
        "seq": seq,
        "kind": kind,
        "contact_id": contact_id,
        "manifest_hash": manifest_hash,
        "prev_hash": prev_hash,
        "sealed_at": canonical_time(sealed_at),
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def purge_detail_hash(detail: dict[str, Any]) -> str:
    """What a purge entry stores as its ``manifest_hash``."""
    return hashlib.sha256(canonical_json(detail)).hexdigest()


@asynccontextmanager
async def _transaction(db: Db) -> AsyncIterator[AsyncSession]:
    """A sessionmaker: a new session committed at the end. A session: the caller's
    transaction (flushed here, committed by the caller, who holds the head lock until then)."""
    if isinstance(db, AsyncSession):
        yield db
        await db.flush()
        return
    async with db() as session:
        yield session
        await session.commit()


@asynccontextmanager
async def _reading(db: Db) -> AsyncIterator[AsyncSession]:
    if isinstance(db, AsyncSession):
        yield db
        return
    async with db() as session:
        yield session


async def _advance_head(session: AsyncSession) -> tuple[int, str]:
    """Take the next sequence number and the previous hash under the head row's lock."""
    table = ChainHead.__table__  # type: ignore[attr-defined]
    update = (
        sa.update(table)
        .where(table.c.id == 1)
        .values(seq=table.c.seq + 1)
        .returning(table.c.seq, table.c.entry_hash)
    )
    row = (await session.execute(update)).first()
    if row is None:
        dialect = (await session.connection()).dialect.name
        values = {"id": 1, "seq": 0, "entry_hash": GENESIS}
        insert: Any
        if dialect == "postgresql":
            insert = postgresql.insert(table).values(**values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            insert = sqlite.insert(table).values(**values).on_conflict_do_nothing()
        else:  # pragma: no cover - the project runs on SQLite and PostgreSQL
            insert = sa.insert(table).values(**values)
        await session.execute(insert)
        row = (await session.execute(update)).first()
        assert row is not None
    return int(row[0]), str(row[1])


async def _append(
    db: Db,
    *,
    kind: Kind,
    contact_id: str,
    manifest_hash: str,
    status: str,
    locations: dict[str, str],
    retain_until: datetime | None,
    detail: dict[str, Any],
    sealed_at: datetime | None,
) -> LedgerEntry:
    at = (sealed_at or datetime.now(UTC)).astimezone(UTC)
    async with _transaction(db) as session:
        seq, prev_hash = await _advance_head(session)
        entry_hash = compute_entry_hash(seq, kind, contact_id, manifest_hash, prev_hash, at)
        entry = LedgerEntry(
            seq=seq,
            kind=kind,
            contact_id=contact_id,
            manifest_hash=manifest_hash,
            prev_hash=prev_hash,
            entry_hash=entry_hash,
            status=status,
            sealed_at=at,
            locations=dict(locations),
            retain_until=retain_until,
            detail=detail,
        )
        session.add(entry)
        await session.flush()
        table = ChainHead.__table__  # type: ignore[attr-defined]
        await session.execute(sa.update(table).where(table.c.id == 1).values(entry_hash=entry_hash))
    return entry


async def append_seal(
    db: Db,
    *,
    contact_id: str,
    manifest_hash: str,
    status: str,
    locations: dict[str, str],
    retain_until: datetime | None,
    sealed_at: datetime | None = None,
) -> LedgerEntry:
    """Append a seal entry for a contact whose ``manifest.json`` hashes to ``manifest_hash``."""
    if status not in ("complete", "incomplete"):
        raise ValueError(f"status must be 'complete' or 'incomplete', not {status!r}")
    return await _append(
        db,
        kind="seal",
        contact_id=contact_id,
        manifest_hash=manifest_hash,
        status=status,
        locations=locations,
        retain_until=retain_until,
        detail={},
        sealed_at=sealed_at,
    )


async def append_purge(
    db: Db,
    *,
    contact_id: str,
    files: list[str],
    actor: str,
    purged_at: datetime | None = None,
) -> LedgerEntry:
    """Append a purge entry naming the contact and the files deleted from storage."""
    detail = {"contact_id": contact_id, "files": sorted(files), "actor": actor}
    return await _append(
        db,
        kind="purge",
        contact_id=contact_id,
        manifest_hash=purge_detail_hash(detail),
        status="purged",
        locations={},
        retain_until=None,
        detail=detail,
        sealed_at=purged_at,
    )


async def entries(
    db: Db,
    *,
    contact_id: str | None = None,
    kind: Kind | None = None,
    since: datetime | None = None,
    seqs: Iterable[int] | None = None,
) -> list[LedgerEntry]:
    """Ledger entries in chain order, optionally of one contact, one kind, sealed since, or
    with one of the sequence numbers ``seqs``."""
    query = select(LedgerEntry)
    if seqs is not None:
        query = query.where(LedgerEntry.seq.in_(sorted(set(seqs))))  # type: ignore[attr-defined]
    if contact_id is not None:
        query = query.where(LedgerEntry.contact_id == contact_id)
    if kind is not None:
        query = query.where(LedgerEntry.kind == kind)
    if since is not None:
        query = query.where(LedgerEntry.sealed_at >= since)
    query = query.order_by(LedgerEntry.seq)  # type: ignore[arg-type]
    async with _reading(db) as session:
        return list((await session.exec(query)).all())


async def chain_head(db: Db) -> ChainHead | None:
    """The head row (None before the first append)."""
    async with _reading(db) as session:
        return await session.get(ChainHead, 1)


async def set_locations(db: Db, seq: int, locations: dict[str, str]) -> None:
    """Record where a sealed entry's files now live (after an upload)."""
    async with _transaction(db) as session:
        entry = await session.get(LedgerEntry, seq)
        if entry is None:
            raise KeyError(f"no ledger entry {seq}")
        entry.locations = dict(locations)
        session.add(entry)
