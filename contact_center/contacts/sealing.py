"""Sealing a contact's recording when it ends, and uploading what was sealed.

``seal`` runs on the owner once the contact is final (its timeline copied, its files closed):
the manifest gets the contact's metadata from the database (customer, advisors, language,
topic and the bot's intent, channels, times, outcome), the pauses from the timeline, and
``recordings.seal.seal_contact`` writes it and appends the ledger entry (one chain whatever the
number of instances: see ``recordings.ledger``). The status is ``complete``, or ``incomplete``
when a recorder failed or the instance died first (``Recordings.sweep``).

``Uploader`` then copies the sealed directory to the S3-compatible store, in a worker thread
(never on the event loop), retried with backoff; the ledger records the new locations and the
local copy is removed unless ``CC_RECORDINGS_KEEP_LOCAL``. The contact's claim is held until
the upload is over, so no other process takes the directory meanwhile; what a restart finds
sealed but not uploaded is queued again (``Uploader.resume_pending``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.recording import OpenRecording, Recordings
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, User
from recordings import ledger
from recordings.claim import Claim, ClaimHeld
from recordings.ledger import LedgerEntry
from recordings.manifest import MANIFEST, TIMELINE, read_manifest
from recordings.seal import SealResult, seal_contact
from recordings.storage import Storage
from recordings.timeline import pauses_of, read_timeline

log = logging.getLogger(__name__)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


async def contact_metadata(
    db: async_sessionmaker[AsyncSession], contact_id: str
) -> tuple[dict[str, Any], str | None, bool]:
    """(manifest metadata, topic for retention, whether a recorder failed) of a contact."""
    async with transaction(db) as session:
        contact = await store.get_contact(session, contact_id=contact_id)
        if contact is None:
            return {"contact_id": contact_id, "known": False}, None, False
        events = await store.events_of(session, contact_id=contact_id)
        accepted = [e for e in events if e.kind == "accepted"]
        ids = sorted({int(e.data["agent_id"]) for e in accepted if e.data.get("agent_id")})
        users = {
            u.id: u
            for u in (await session.exec(select(User).where(col(User.id).in_(ids)))).all()
        }
    advisors = []
    for event in accepted:
        user = users.get(int(event.data.get("agent_id") or 0))
        advisors.append(
            {
                "user_id": user.id if user else None,
                "username": user.username if user else None,
                "display_name": user.display_name if user else None,
                "accepted_at": _iso(event.at),
            }
        )
    handoffs = [e for e in events if e.kind == "handoff"]
    final = next((e for e in reversed(events) if e.to_state == contact.state), None)
    metadata: dict[str, Any] = {
        "contact_id": contact.id,
        "customer": {"ref": contact.customer_ref, "name": contact.customer_name, "vip": contact.vip},
        "advisors": advisors,
        "language": contact.language,
        "topic": contact.topic,
        "intent": handoffs[-1].data.get("intent") if handoffs else None,
        "skills": contact.skills,
        "priority": contact.priority,
        "channels": contact.channels,
        "created_at": _iso(contact.created_at),
        "connected_at": advisors[0]["accepted_at"] if advisors else None,
        "ended_at": _iso(contact.ended_at),
        "outcome": {
            "state": contact.state,
            "reason": final.kind if final else None,
            "actor": final.actor if final else None,
        },
        "transfers": sum(1 for e in events if e.kind == "transferred"),
        "recording_failed": contact.recording_failed,
        "instance": contact.instance,
    }
    return metadata, contact.topic, contact.recording_failed


async def seal(
    recordings: Recordings, recording: OpenRecording, *, status: str | None = None
) -> SealResult | None:
    """Seal a contact whose timeline is closed; None (reported) when it cannot be sealed."""
    contact_id = recording.contact_id
    directory = recording.directory
    try:
        metadata, topic, failed = await contact_metadata(recordings.db, contact_id)
        found = None
        if (directory / TIMELINE).exists():
            found = await asyncio.to_thread(read_timeline, directory)
            metadata["timeline"] = {"lines": len(found.events), "problems": found.problems}
        final = status or ("incomplete" if failed or recording.timeline_failed else "complete")
        result = await seal_contact(
            directory,
            recordings.db,
            metadata=metadata,
            pauses=pauses_of(found.events) if found else [],
            status="incomplete" if final == "incomplete" else "complete",
            topic=topic,
            policy=recordings.policy,
            contact_id=contact_id,
        )
    except Exception as error:
        log.exception("sealing the recording of %s failed", contact_id)
        await recordings.failure(contact_id, stage="seal", error=error)
        recording.claim.release()
        return None
    status_text = result.manifest["status"]
    log.info(
        "recording of %s sealed %s (ledger seq %d)", contact_id, status_text, result.entry.seq
    )
    try:
        async with transaction(recordings.db) as session:
            await session.exec(
                update(Contact)
                .where(col(Contact.id) == contact_id)
                .values(recording_status=status_text)
                .execution_options(synchronize_session=False)
            )
        await recordings.redis.delete(redis_keys.timeline(contact_id))
    except Exception:
        log.exception("recording of %s sealed; its status could not be stored", contact_id)
    if recordings.uploader is not None:
        recordings.uploader.submit(contact_id, directory, result.entry, recording.claim)
    else:
        recording.claim.release()
    return result


async def chain_unchained(recordings: Recordings) -> list[str]:
    """Ledger entries for manifests that have none: their instance died (or was stopped)
    between writing ``manifest.json`` and appending its seal entry. The manifest is as it was
    written (its hash is what the entry records); the entry says when it was found."""
    root = recordings.root
    if root is None or not root.is_dir():
        return []
    chained = {e.contact_id for e in await ledger.entries(recordings.db, kind="seal")}
    found: list[str] = []
    for directory in sorted(root.iterdir()):
        if directory.name.startswith(".") or directory.name in chained:
            continue
        if not (directory / MANIFEST).is_file():
            continue
        try:
            claim = await asyncio.to_thread(Claim.take, root, directory.name)
        except ClaimHeld:
            continue  # its live process is appending it now
        try:
            data = await asyncio.to_thread((directory / MANIFEST).read_bytes)
            manifest = read_manifest(data)
            names = [f["name"] for f in manifest["files"]] + [MANIFEST]
            at = datetime.now(UTC)
            entry = await ledger.append_seal(
                recordings.db,
                contact_id=directory.name,
                manifest_hash=hashlib.sha256(data).hexdigest(),
                status=str(manifest.get("status", "incomplete")),
                locations={name: f"local:{directory.name}/{name}" for name in names},
                retain_until=recordings.policy.retain_until(
                    at, (manifest.get("metadata") or {}).get("topic")
                ),
                sealed_at=at,
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error("manifest of %s without a ledger entry, unreadable: %s", directory.name, error)
            claim.release()
            continue
        log.warning("manifest of %s had no ledger entry: appended (seq %d)", directory.name, entry.seq)
        found.append(directory.name)
        if recordings.uploader is not None:
            recordings.uploader.submit(directory.name, directory, entry, claim)
        else:
            claim.release()
    return found


@dataclass
class _Upload:
    contact_id: str
    directory: Path
    seq: int
    retain_until: datetime | None
    claim: Claim


class Uploader:
    """Uploads sealed directories to ``storage`` in the background (``run``)."""

    def __init__(
        self,
        recordings: Recordings,
        storage: Storage,
        *,
        attempts: int = 5,
        backoff_s: float = 5.0,
        keep_local: bool = False,
    ) -> None:
        self.recordings = recordings
        self.storage = storage
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.keep_local = keep_local
        self.uploaded: list[str] = []  # contacts uploaded by this process (newest last)
        self._queue: asyncio.Queue[_Upload] = asyncio.Queue()

    def submit(self, contact_id: str, directory: Path, entry: LedgerEntry, claim: Claim) -> None:
        """Queue a sealed directory; the uploader releases ``claim`` when done with it."""
        self._queue.put_nowait(_Upload(contact_id, directory, entry.seq, entry.retain_until, claim))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def resume_pending(self) -> int:
        """Queue what is sealed here but still only local (a restart between seal and upload)."""
        root = self.recordings.root
        if root is None:
            return 0
        queued = 0
        for entry in await ledger.entries(self.recordings.db, kind="seal"):
            directory = root / entry.contact_id
            if not entry.locations or not all(
                str(v).startswith("local:") for v in entry.locations.values()
            ):
                continue
            if not (directory / MANIFEST).exists():
                continue
            try:
                claim = await asyncio.to_thread(Claim.take, root, entry.contact_id)
            except ClaimHeld:
                continue  # its own process uploads it
            self._queue.put_nowait(
                _Upload(entry.contact_id, directory, entry.seq, entry.retain_until, claim)
            )
            queued += 1
        return queued

    async def run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._upload(item)
            finally:
                item.claim.release()
                self._queue.task_done()

    async def join(self) -> None:
        """Wait until everything queued is uploaded (or given up)."""
        await self._queue.join()

    def close(self) -> None:
        """Let go of what is still queued (the next start uploads it: ``resume_pending``)."""
        while not self._queue.empty():
            self._queue.get_nowait().claim.release()
            self._queue.task_done()

    async def _upload(self, item: _Upload) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                # A worker thread: boto3 blocks, and its own retries sleep.
                locations = await asyncio.to_thread(
                    self.storage.upload_sealed,
                    item.contact_id,
                    item.directory,
                    retain_until=item.retain_until,
                )
                await ledger.set_locations(self.recordings.db, item.seq, locations)
            except Exception as error:
                if attempt == self.attempts:
                    log.error("upload of %s given up after %d attempts", item.contact_id, attempt)
                    await self.recordings.failure(
                        item.contact_id, stage="upload", error=error, attempts=attempt
                    )
                    return
                delay = self.backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "upload of %s failed (%s); retry %d in %.1f s",
                    item.contact_id,
                    error,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            log.info("recording of %s uploaded (%d files)", item.contact_id, len(locations))
            if not self.keep_local:
                await asyncio.to_thread(shutil.rmtree, item.directory, True)
            self.uploaded.append(item.contact_id)
            return
