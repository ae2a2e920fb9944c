"""Seal one contact's recording directory at the contact's end.

``seal_contact``: build the manifest (every file hashed, media demuxed; card numbers masked in
the metadata and pauses given, as everywhere else they are stored), write
``manifest.json`` (never over an existing one), append a seal entry to the ledger with the
retention date, and, given an ``upload`` storage (S3), copy the sealed files there in a worker
thread (with retries) and record their new locations. The manifest and the ledger entry are
written before any upload, so a failed upload leaves a sealed, verifiable local copy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recordings import ledger
from recordings.ledger import Db, LedgerEntry
from recordings.manifest import MANIFEST, Status, build_manifest, manifest_hash, write_manifest
from recordings.redact import mask_fields
from recordings.retention import DEFAULT_POLICY, RetentionPolicy

__all__ = ["SealResult", "seal_contact"]


@dataclass
class SealResult:
    entry: LedgerEntry
    manifest: dict[str, Any]
    locations: dict[str, str]


async def seal_contact(
    directory: Path,
    db: Db,
    *,
    metadata: dict[str, Any] | None = None,
    pauses: list[Any] | None = None,
    status: Status = "complete",
    topic: str | None = None,
    policy: RetentionPolicy = DEFAULT_POLICY,
    contact_id: str | None = None,
    upload: Any = None,
    sealed_at: datetime | None = None,
) -> SealResult:
    """Seal ``directory`` (named after the contact, under the local storage root)."""
    directory = Path(directory)
    contact = contact_id or directory.name
    manifest = await asyncio.to_thread(
        build_manifest,
        directory,
        metadata=mask_fields(metadata or {}),
        pauses=mask_fields(pauses or []),
        previous_hash=None,
        status=status,
        contact_id=contact,
    )
    await asyncio.to_thread(write_manifest, directory, manifest)
    at = (sealed_at or datetime.now(UTC)).astimezone(UTC)
    names = [f["name"] for f in manifest["files"]] + [MANIFEST]
    locations = {name: f"local:{contact}/{name}" for name in names}
    until = policy.retain_until(at, topic)
    entry = await ledger.append_seal(
        db,
        contact_id=contact,
        manifest_hash=manifest_hash(manifest),
        status=status,
        locations=locations,
        retain_until=until,
        sealed_at=at,
    )
    if upload is not None:
        locations = await asyncio.to_thread(
            upload.upload_sealed, contact, directory, retain_until=until
        )
        await ledger.set_locations(db, entry.seq, locations)
        entry.locations = locations
    return SealResult(entry=entry, manifest=manifest, locations=locations)
