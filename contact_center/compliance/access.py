"""Audited reads of recordings for compliance: one audit row per access, with the case's reason.

Every public method of ``ComplianceAccess`` takes the ``Viewer`` (who, from which address, under
which grant), refuses a contact the grant does not cover, and writes exactly one ``audit_log``
row (``compliance.<what>``, the contact as ``contact:<id>``, the grant's reason and id) before
it hands anything out, in the transaction of its database reads; a hold is changed in the same
transaction as its row. Files are read through ``recordings.storage`` (in worker threads), so a
local directory and an S3 bucket serve alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.compliance import replay, search
from contact_center.compliance.grants import Grant, require_contact
from contact_center.compliance.ranges import RangeNotSatisfiable, parse_range
from contact_center.compliance.search import core_execute
from contact_center.db.engine import (
    create_engine,
    read_only,
    reading,
    session_factory,
    transaction,
)
from contact_center.db.models import (
    AuditLog,
    ChatMessage,
    ComplianceCheck,
    Contact,
    ContactEvent,
    LedgerEntry,
    User,
)
from contact_center.errors import ClientError, Conflict, NotFound
from recordings import retention
from recordings.export import ExportError, export_contact
from recordings.manifest import MANIFEST, TIMELINE, hash_file, read_manifest
from recordings.storage import LocalStorage, Storage
from recordings.verify import verify

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read from storage per step when streaming
EXPORT_KEEP_S = 24 * 3600
MEDIA_SUFFIXES = (".webm", ".mkv")


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking, from where, under which grant."""

    ref: str
    address: str | None
    grant: Grant


@dataclass
class MediaRead:
    """What the media endpoint serves: the file, its size and the spans asked for."""

    contact_id: str
    name: str
    size: int
    content_type: str
    etag: str | None
    spans: list[tuple[int, int]] | None  # None: the whole file
    refused: RangeNotSatisfiable | None = None


@dataclass
class Export:
    id: str
    path: Path
    sha256: str
    size: int
    files: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)


def _iso(value: datetime | None) -> str | None:
    value = replay.parse_time(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def _check_dict(check: ComplianceCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {
        "ok": check.ok,
        "checked_at": _iso(check.checked_at),
        "actor": check.actor,
        "problems": list(check.problems),
        "files": check.files,
        "bytes_hashed": check.bytes_hashed,
    }


def _entry_dict(entry: LedgerEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "seq": entry.seq,
        "status": entry.status,
        "sealed_at": _iso(entry.sealed_at),
        "manifest_hash": entry.manifest_hash,
        "entry_hash": entry.entry_hash,
        "prev_hash": entry.prev_hash,
        "retain_until": _iso(entry.retain_until),
        "held": entry.held,
        "hold_reason": entry.hold_reason,
        "held_by": entry.held_by,
        "held_at": _iso(entry.held_at),
        "locations": dict(entry.locations or {}),
    }


async def _recording_dict(session: AsyncSession, entry: LedgerEntry | None) -> dict[str, Any] | None:
    """``_entry_dict`` with the name of whoever holds it (``held_by_name``)."""
    recording = _entry_dict(entry)
    if recording is None or entry is None:
        return recording
    holder = entry.held_by
    user_id = (holder or "").removeprefix("user:")
    user = await session.get(User, int(user_id)) if holder and user_id.isdigit() else None
    recording["held_by_name"] = user.display_name if user else holder
    return recording


def _verify_in_thread(database_url: str, storage: Storage, contact_id: str) -> dict[str, Any]:
    """``recordings.verify`` for one contact on an engine of its own, off the event loop
    (verify hashes synchronously, and an engine belongs to the loop that made it)."""

    async def run() -> dict[str, Any]:
        engine = create_engine(database_url)
        try:
            # it reads the whole chain: on SQLite, without the write lock (see ``reading``)
            report = await verify(
                session_factory(read_only(engine)), storage, contact_id=contact_id
            )
        finally:
            await engine.dispose()
        return report.as_dict()

    return asyncio.run(run())


class ComplianceAccess:
    """The compliance reads and acts, audited (``app[appkeys.COMPLIANCE]``)."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        storage: Storage,
        *,
        database_url: str,
        exports_dir: Path,
    ) -> None:
        self.db = db
        self.storage = storage
        self.database_url = database_url
        self.exports_dir = Path(exports_dir)

    # ------------------------------------------------------------------ audit

    @staticmethod
    def _audit(
        session: AsyncSession,
        viewer: Viewer,
        action: str,
        contact_id: str | None = None,
        **detail: Any,
    ) -> None:
        session.add(
            AuditLog(
                actor=viewer.ref,
                action=f"compliance.{action}",
                target=f"contact:{contact_id}" if contact_id else None,
                reason=viewer.grant.reason,
                address=viewer.address,
                detail={"grant": viewer.grant.id, **detail},
            )
        )

    async def record_grant(self, viewer: Viewer, action: str, added: list[str]) -> None:
        """The case was opened (``grant``) or took in more contacts (``grant_extend``)."""
        async with transaction(self.db) as session:
            self._audit(
                session,
                viewer,
                action,
                added[0] if len(added) == 1 else None,
                contacts=added,
                expires_at=viewer.grant.expires_at,
            )

    # ------------------------------------------------------------------ search

    async def search(self, viewer: Viewer, query: search.SearchQuery) -> dict[str, Any]:
        # the search is read outside the audit's transaction: on SQLite it would hold the write
        # lock for as long as it reads (see ``reading``); the page is shown once audited
        async with reading(self.db) as session:
            page = await search.search(session, query)
        async with transaction(self.db) as session:
            self._audit(
                session,
                viewer,
                "search",
                filters=query.filters(),
                page=query.page,
                total=page["total"],
                contacts=[row["id"] for row in page["results"]],
            )
        return page

    async def facets(self) -> dict[str, Any]:
        async with reading(self.db) as session:
            return await search.facets(session)

    # ------------------------------------------------------------------ one contact

    @staticmethod
    async def _seal(session: AsyncSession, contact_id: str) -> LedgerEntry | None:
        rows = await session.exec(
            select(LedgerEntry)
            .where(LedgerEntry.contact_id == contact_id, LedgerEntry.kind == "seal")
            .order_by(col(LedgerEntry.seq).desc())
            .limit(1)
        )
        return rows.first()

    @staticmethod
    async def _last_check(session: AsyncSession, contact_id: str) -> ComplianceCheck | None:
        rows = await session.exec(
            select(ComplianceCheck)
            .where(ComplianceCheck.contact_id == contact_id)
            .order_by(col(ComplianceCheck.id).desc())
            .limit(1)
        )
        return rows.first()

    @staticmethod
    async def _contact(session: AsyncSession, contact_id: str) -> Contact:
        contact = await session.get(Contact, contact_id)
        if contact is None:
            raise NotFound(f"no contact {contact_id}")
        return contact

    async def contact(self, viewer: Viewer, contact_id: str) -> dict[str, Any]:
        """The contact's particulars and the state of its recording."""
        require_contact(viewer.grant, contact_id)
        async with transaction(self.db) as session:
            self._audit(session, viewer, "view", contact_id)
            contact = await self._contact(session, contact_id)
            seal = await self._seal(session, contact_id)
            check = await self._last_check(session, contact_id)
            advisors = (await search.advisors_of(session, [contact_id])).get(contact_id, [])
            intent = (
                await session.exec(
                    select(ContactEvent)
                    .where(ContactEvent.contact_id == contact_id, ContactEvent.kind == "handoff")
                    .order_by(col(ContactEvent.id).desc())
                    .limit(1)
                )
            ).first()
            recording = await _recording_dict(session, seal)
        stored = await asyncio.to_thread(self.storage.list, contact_id)
        created, ended = replay.parse_time(contact.created_at), replay.parse_time(contact.ended_at)
        return {
            "id": contact.id,
            "customer": {"ref": contact.customer_ref, "name": contact.customer_name},
            "advisors": advisors,
            "channels": list(contact.channels),
            "language": contact.language,
            "topic": contact.topic,
            "intent": (intent.data or {}).get("intent") if intent else None,
            "vip": contact.vip,
            "state": contact.state,
            "started_at": _iso(created),
            "ended_at": _iso(ended),
            "duration_s": round((ended - created).total_seconds(), 1)
            if ended and created
            else None,
            "recording": recording,
            "check": _check_dict(check),
            "files": [{"name": name, "size": size} for name, size in sorted(stored.items())],
        }

    def _read_whole(self, contact_id: str, name: str) -> bytes | None:
        try:
            return self.storage.open_range(contact_id, name, 0, None)
        except FileNotFoundError:
            return None

    def _probe(self, contact_id: str, name: str) -> tuple[datetime | None, float | None]:
        if isinstance(self.storage, LocalStorage):
            return replay.probe(str(self.storage.path(contact_id, name)))
        with self.storage.open(contact_id, name) as stream:
            return replay.probe(stream)

    def _tracks(self, contact_id: str, manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
        listed = {f["name"]: f for f in (manifest or {}).get("files", []) if isinstance(f, dict)}
        names = set(self.storage.list(contact_id)) | set(listed)
        tracks = []
        for name in sorted(names):
            parsed = replay.media_name(name)
            if parsed is None:
                continue
            try:
                started_at, duration = self._probe(contact_id, name)
            except FileNotFoundError:
                continue  # listed, but purged or missing: verify says so
            entry = listed.get(name, {})
            tracks.append(
                {
                    "name": name,
                    "party": parsed.party,
                    "kind": parsed.kind,
                    "index": parsed.index,
                    "started_at": started_at,
                    "duration_s": entry.get("duration_s") or duration,
                    "content_type": parsed.content_type,
                }
            )
        return tracks

    async def timeline(self, viewer: Viewer, contact_id: str) -> dict[str, Any]:
        """The replay: tracks on one clock, the timeline's entries and the pauses."""
        require_contact(viewer.grant, contact_id)
        async with transaction(self.db) as session:
            self._audit(session, viewer, "timeline", contact_id)
            contact = await self._contact(session, contact_id)
            chat = (
                await session.exec(
                    select(ChatMessage)
                    .where(ChatMessage.contact_id == contact_id)
                    .order_by(col(ChatMessage.seq))
                )
            ).all()
            happenings = (
                await session.exec(
                    select(ContactEvent)
                    .where(ContactEvent.contact_id == contact_id)
                    .order_by(col(ContactEvent.id))
                )
            ).all()
        data = await asyncio.to_thread(self._read_whole, contact_id, TIMELINE)
        manifest_bytes = await asyncio.to_thread(self._read_whole, contact_id, MANIFEST)
        manifest: dict[str, Any] | None = None
        if manifest_bytes is not None:
            try:
                manifest = read_manifest(manifest_bytes)
            except ValueError:
                manifest = None  # verify reports it; the replay goes on from the database
        if data is not None:
            entries, source = replay.from_timeline(replay.read_jsonl(data)), "timeline"
        else:
            entries, source = replay.from_database(chat, happenings), "database"
        tracks = await asyncio.to_thread(self._tracks, contact_id, manifest)
        for track in tracks:
            track["url"] = f"/api/compliance/contacts/{contact_id}/media/{track['name']}"
        return replay.build(
            created_at=contact.created_at,
            ended_at=contact.ended_at,
            tracks=tracks,
            entries=entries,
            listed_pauses=list((manifest or {}).get("pauses") or []),
            source=source,
        )

    async def manifest(self, viewer: Viewer, contact_id: str) -> dict[str, Any]:
        """The sealed manifest, its ledger entry and the last check."""
        require_contact(viewer.grant, contact_id)
        async with transaction(self.db) as session:
            self._audit(session, viewer, "manifest", contact_id)
            await self._contact(session, contact_id)
            seal = await self._seal(session, contact_id)
            check = await self._last_check(session, contact_id)
        data = await asyncio.to_thread(self._read_whole, contact_id, MANIFEST)
        manifest: Any = None
        if data is not None:
            try:
                manifest = read_manifest(data)
            except ValueError as error:
                manifest = {"unreadable": str(error)}
        return {
            "manifest": manifest,
            "manifest_sha256": hashlib.sha256(data).hexdigest() if data is not None else None,
            "matches_ledger": bool(seal and data is not None)
            and hashlib.sha256(data or b"").hexdigest() == (seal.manifest_hash if seal else None),
            "ledger": _entry_dict(seal),
            "check": _check_dict(check),
        }

    async def verify(self, viewer: Viewer, contact_id: str) -> dict[str, Any]:
        """Re-hash the contact's files and walk the chain now; the check is kept."""
        require_contact(viewer.grant, contact_id)
        async with transaction(self.db) as session:
            self._audit(session, viewer, "verify", contact_id)
            await self._contact(session, contact_id)
            if await self._seal(session, contact_id) is None:
                raise Conflict(f"contact {contact_id} is not sealed: there is nothing to verify")
        started = time.perf_counter()
        report = await asyncio.to_thread(
            _verify_in_thread, self.database_url, self.storage, contact_id
        )
        check = ComplianceCheck(
            contact_id=contact_id,
            actor=viewer.ref,
            ok=bool(report["ok"]),
            problems=list(report["problems"])[:200],
            files=int(report["files"]),
            bytes_hashed=int(report["bytes_hashed"]),
        )
        async with transaction(self.db) as session:
            session.add(check)
        result = _check_dict(check) or {}
        result["seconds"] = round(time.perf_counter() - started, 3)
        result["entries"] = report["entries"]
        return result

    # ------------------------------------------------------------------ media

    async def media(
        self, viewer: Viewer, contact_id: str, name: str, range_header: str | None
    ) -> MediaRead:
        """What to send of one media file (spans checked against its size), audited."""
        require_contact(viewer.grant, contact_id)
        parsed = replay.media_name(name)
        async with transaction(self.db) as session:
            await self._contact(session, contact_id)
            seal = await self._seal(session, contact_id)
            size: int | None = None
            if parsed is not None:
                try:
                    size = await asyncio.to_thread(self.storage.size, contact_id, name)
                except (FileNotFoundError, ValueError):
                    size = None
            read = MediaRead(
                contact_id=contact_id,
                name=name,
                size=size or 0,
                content_type=parsed.content_type if parsed else "application/octet-stream",
                etag=None,
                spans=None,
            )
            if parsed is not None and size is not None:
                try:
                    read.spans = parse_range(range_header, size)
                except RangeNotSatisfiable as error:
                    read.refused = error
            self._audit(
                session,
                viewer,
                "media",
                contact_id,
                file=name,
                range=range_header,
                refused=str(read.refused) if read.refused else None,
            )
        if parsed is None or size is None:
            raise NotFound(f"contact {contact_id} has no media file {name!r}")
        if seal is not None:
            read.etag = f'"{seal.manifest_hash[:16]}-{name}"'
        return read

    async def chunks(self, read: MediaRead, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive of the file, ``CHUNK`` at a time."""
        position = start
        while position <= end:
            last = min(end, position + CHUNK - 1)
            data = await asyncio.to_thread(
                self.storage.open_range, read.contact_id, read.name, position, last
            )
            if not data:
                return
            yield data
            position += len(data)

    # ------------------------------------------------------------------ hold and export

    async def set_hold(
        self, viewer: Viewer, contact_id: str, *, held: bool, reason: str
    ) -> dict[str, Any]:
        """Put a legal hold on the contact or lift it, with its own reason (audited together)."""
        require_contact(viewer.grant, contact_id)
        change = retention.set_hold if held else retention.clear_hold
        async with transaction(self.db) as session:
            await self._contact(session, contact_id)
            try:
                await change(session, contact_id, reason=reason, actor=viewer.ref)
            except retention.HoldError as error:
                raise ClientError(str(error)) from None
            self._audit(
                session, viewer, "hold" if held else "unhold", contact_id, hold_reason=reason
            )
            seal = await self._seal(session, contact_id)
            recording = await _recording_dict(session, seal)
        return {"recording": recording}

    def _sweep_exports(self) -> None:
        """Exports are for handing over, not keeping: older ones are deleted."""
        if not self.exports_dir.is_dir():
            return
        cutoff = time.time() - EXPORT_KEEP_S
        for path in self.exports_dir.glob("*.zip"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                log.warning("could not delete old export %s", path)

    def export_path(self, export_id: str) -> Path:
        contact_id, _, token = export_id.partition(".")
        if not contact_id or len(token) != 16 or not token.isalnum():
            raise NotFound(f"no export {export_id[:80]!r}")
        return self.exports_dir / f"{export_id}.zip"

    async def export(self, viewer: Viewer, contact_id: str) -> Export:
        """A zip of the sealed contact, checkable offline (``recordings.export``), hashed."""
        require_contact(viewer.grant, contact_id)
        async with transaction(self.db) as session:
            await self._contact(session, contact_id)
        await asyncio.to_thread(self._sweep_exports)
        await asyncio.to_thread(self.exports_dir.mkdir, parents=True, exist_ok=True)
        export_id = f"{contact_id}.{secrets.token_hex(8)}"
        path = self.export_path(export_id)
        try:
            result = await export_contact(self.db, self.storage, contact_id, path)
        except ExportError as error:
            raise Conflict(str(error).splitlines()[0]) from None
        sha256, size = await asyncio.to_thread(hash_file, path)
        try:
            async with transaction(self.db) as session:
                self._audit(
                    session,
                    viewer,
                    "export",
                    contact_id,
                    export=export_id,
                    sha256=sha256,
                    size=size,
                    seq=result.seq,
                    files=result.files,
                    purged=result.purged,
                )
        except BaseException:
            path.unlink(missing_ok=True)  # never an export without its audit row
            raise
        return Export(export_id, path, sha256, size, result.files, result.purged)

    async def download(self, viewer: Viewer, export_id: str) -> Path:
        path = self.export_path(export_id)
        contact_id = export_id.partition(".")[0]
        require_contact(viewer.grant, contact_id)
        if not await asyncio.to_thread(path.is_file):
            raise NotFound(f"no export {export_id}: exports are kept {EXPORT_KEEP_S // 3600} h")
        sha256, size = await asyncio.to_thread(hash_file, path)
        async with transaction(self.db) as session:
            self._audit(
                session, viewer, "export_download", contact_id, export=export_id, sha256=sha256
            )
        return path

    # ------------------------------------------------------------------ the audit log

    async def audit_log(
        self,
        viewer: Viewer,
        *,
        actor: str | None = None,
        action: str | None = None,
        contact_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> dict[str, Any]:
        """Compliance rows of the audit log, newest first, filtered; viewing it is audited."""
        table = AuditLog.__table__  # type: ignore[attr-defined]
        where: list[Any] = [table.c.action.like("compliance.%")]
        if actor:
            ids = sa.select(sa.literal("user:") + sa.cast(User.__table__.c.id, sa.String)).where(  # type: ignore[attr-defined]
                sa.or_(
                    sa.func.lower(User.__table__.c.username) == actor.lower(),  # type: ignore[attr-defined]
                    User.__table__.c.display_name.ilike(f"%{actor}%"),  # type: ignore[attr-defined]
                )
            )
            where.append(sa.or_(table.c.actor == actor, table.c.actor.in_(ids)))
        if action:
            where.append(table.c.action == f"compliance.{action}")
        if contact_id:
            where.append(table.c.target == f"contact:{contact_id}")
        if since:
            where.append(table.c.at >= since.astimezone(UTC))
        if until:
            where.append(table.c.at < until.astimezone(UTC))
        async with reading(self.db) as session:  # (see ``search``)
            total = (
                await core_execute(
                    session, sa.select(sa.func.count()).select_from(table).where(*where)
                )
            ).scalar_one()
            rows = (
                (
                    await core_execute(
                        session,
                        sa.select(table)
                        .where(*where)
                        .order_by(table.c.id.desc())
                        .limit(per_page)
                        .offset((page - 1) * per_page),
                    )
                )
                .mappings()
                .all()
            )
            refs = {row["actor"] for row in rows if str(row["actor"]).startswith("user:")}
            names: dict[str, str] = {}
            if refs:
                user_ids = [
                    int(ref.split(":", 1)[1]) for ref in refs if ref.split(":", 1)[1].isdigit()
                ]
                for user in (
                    await session.exec(select(User).where(col(User.id).in_(user_ids)))
                ).all():
                    names[f"user:{user.id}"] = user.display_name
        async with transaction(self.db) as session:
            self._audit(
                session,
                viewer,
                "audit_view",
                filters={
                    "actor": actor,
                    "action": action,
                    "contact": contact_id,
                    "from": _iso(since),
                    "to": _iso(until),
                    "page": page,
                },
            )
        return {
            "total": int(total),
            "page": page,
            "per_page": per_page,
            "rows": [
                {
                    "id": row["id"],
                    "at": _iso(row["at"]),
                    "actor": row["actor"],
                    "actor_name": names.get(row["actor"], row["actor"]),
                    "action": str(row["action"]).removeprefix("compliance."),
                    "contact": (row["target"] or "").removeprefix("contact:") or None,
                    "reason": row["reason"],
                    "address": row["address"],
                    "detail": row["detail"],
                }
                for row in rows
            ],
        }
