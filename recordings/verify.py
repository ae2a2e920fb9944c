"""Check sealed recordings against their manifests and the ledger's hash chain.

The chain: ``seq`` must run 1, 2, 3... (a gap is a deleted row), every ``prev_hash`` must be
the previous entry's ``entry_hash`` and every ``entry_hash`` must be recomputed equal (an
edited, inserted, swapped or reordered row breaks one of these), and the head row must name the
last entry (a deleted last row). Each seal: ``manifest.json`` read from the storage must hash
to the entry's ``manifest_hash`` and name the same contact and status; every file it lists
must be in the storage with its size and SHA-256, no other file may be there, and the entry's
``locations`` must name exactly those files. Files named by a later purge entry are expected
to be gone; a purge entry's ``manifest_hash`` must be the hash of its ``detail``.

File hashing is the bulk of the work: ``jobs > 1`` spreads it over processes (each reads in
``BLOCK``-sized pieces). ``since`` and ``contact_id`` limit which seals are re-hashed; the chain
is always walked whole (it is small).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from recordings import ledger
from recordings.ledger import GENESIS, Db, LedgerEntry
from recordings.manifest import (
    BLOCK,
    MANIFEST,
    hash_file,
    hash_stream,
    manifest_hash,
    read_manifest,
)
from recordings.storage import LocalStorage, Storage

__all__ = ["Problem", "VerifyReport", "hash_stored", "verify"]


@dataclass(frozen=True)
class Problem:
    """One finding: the contact (None for the chain itself), the file (if one) and what."""

    contact_id: str | None
    name: str | None
    message: str
    seq: int | None = None

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                f"seq {self.seq}" if self.seq is not None else "",
                f"contact {self.contact_id}" if self.contact_id else "",
                f"file {self.name}" if self.name else "",
            )
            if part
        )
        return f"{where or 'ledger'}: {self.message}"


@dataclass
class VerifyReport:
    """What ``verify`` found and how much it read."""

    problems: list[Problem] = field(default_factory=list)
    entries: int = 0
    contacts: int = 0
    files: int = 0
    bytes_hashed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "contacts": self.contacts,
            "files": self.files,
            "bytes_hashed": self.bytes_hashed,
            "problems": [str(problem) for problem in self.problems],
        }


def hash_stored(
    storage: Storage, contact_id: str, name: str, block: int = BLOCK
) -> tuple[str, int]:
    """(SHA-256, size) of a stored file, read in ``block``-byte pieces."""
    if isinstance(storage, LocalStorage):
        return hash_file(storage.path(contact_id, name), block)
    with storage.open(contact_id, name) as body:
        return hash_stream(body, block)


def _hash_job(
    storage: Storage, contact_id: str, name: str, block: int
) -> tuple[str, str, str | None, int, str | None]:
    try:
        sha256, size = hash_stored(storage, contact_id, name, block)
    except FileNotFoundError:
        return contact_id, name, None, 0, "missing from storage"
    except OSError as error:
        return contact_id, name, None, 0, f"unreadable: {error}"
    return contact_id, name, sha256, size, None


def _walk_chain(
    rows: list[LedgerEntry], head: ledger.ChainHead | None, report: VerifyReport
) -> None:
    previous = GENESIS
    for index, row in enumerate(rows, start=1):
        if row.seq != index:
            report.problems.append(
                Problem(row.contact_id, None, f"sequence gap or reorder: expected {index}", row.seq)
            )
        if row.prev_hash != previous:
            report.problems.append(
                Problem(
                    row.contact_id, None, "prev_hash does not match the previous entry", row.seq
                )
            )
        expected = ledger.compute_entry_hash(
            row.seq, row.kind, row.contact_id, row.manifest_hash, row.prev_hash, row.sealed_at
        )
        if row.entry_hash != expected:
            report.problems.append(
                Problem(row.contact_id, None, "entry_hash does not match the entry", row.seq)
            )
        if row.kind == "purge":
            if ledger.purge_detail_hash(row.detail) != row.manifest_hash:
                report.problems.append(
                    Problem(row.contact_id, None, "purge detail was edited", row.seq)
                )
        elif row.kind != "seal":
            report.problems.append(
                Problem(row.contact_id, None, f"unknown kind {row.kind!r}", row.seq)
            )
        previous = row.entry_hash
    last_seq = rows[-1].seq if rows else 0
    if head is None:
        if rows:
            report.problems.append(Problem(None, None, "chain head row is missing"))
    elif head.seq != last_seq or head.entry_hash != previous:
        report.problems.append(
            Problem(
                None,
                None,
                f"chain head (seq {head.seq}) does not name the last entry (seq {last_seq}):"
                " entries were deleted or added",
            )
        )


def _check_manifest(
    storage: Storage, entry: LedgerEntry, purged: set[str], report: VerifyReport
) -> dict[str, tuple[str, int]]:
    """Checks the manifest itself; returns the files to hash: name -> (sha256, size)."""
    contact = entry.contact_id
    problems = report.problems
    stored = storage.list(contact)
    if MANIFEST in purged:
        expected: dict[str, tuple[str, int]] = {}
        manifest_names: set[str] = set()
    else:
        try:
            data = storage.open_range(contact, MANIFEST, 0, None)
        except FileNotFoundError:
            problems.append(Problem(contact, MANIFEST, "manifest is missing", entry.seq))
            return {}
        report.bytes_hashed += len(data)
        if hashlib.sha256(data).hexdigest() != entry.manifest_hash:
            problems.append(
                Problem(contact, MANIFEST, "manifest does not match the ledger's hash", entry.seq)
            )
        try:
            manifest = read_manifest(data)
            files = {f["name"]: (f["sha256"], int(f["size"])) for f in manifest["files"]}
        except (ValueError, KeyError, TypeError) as error:
            problems.append(Problem(contact, MANIFEST, f"manifest unreadable: {error}", entry.seq))
            return {}
        if manifest_hash(manifest) != hashlib.sha256(data).hexdigest():
            problems.append(Problem(contact, MANIFEST, "manifest is not canonical JSON", entry.seq))
        if manifest.get("contact_id") != contact:
            problems.append(
                Problem(
                    contact,
                    MANIFEST,
                    f"manifest names contact {manifest.get('contact_id')!r}",
                    entry.seq,
                )
            )
        if manifest.get("status") != entry.status:
            problems.append(
                Problem(
                    contact,
                    MANIFEST,
                    f"ledger status {entry.status!r} differs from the manifest's",
                    entry.seq,
                )
            )
        manifest_names = set(files) | {MANIFEST}
        if set(entry.locations) != manifest_names:
            for name in sorted(set(entry.locations) ^ manifest_names):
                problems.append(
                    Problem(contact, name, "ledger locations differ from the manifest", entry.seq)
                )
        expected = {name: value for name, value in files.items() if name not in purged}
    for name in sorted(set(stored) - manifest_names):
        if name in purged:
            problems.append(Problem(contact, name, "purged file is still stored", entry.seq))
        else:
            problems.append(Problem(contact, name, "file is not in the manifest", entry.seq))
    for name in sorted(set(expected) - set(stored)):
        problems.append(Problem(contact, name, "file is missing from storage", entry.seq))
        del expected[name]
    for name, (_, size) in list(expected.items()):
        if stored[name] != size:
            problems.append(
                Problem(
                    contact,
                    name,
                    f"size {stored[name]} differs from the manifest's {size}",
                    entry.seq,
                )
            )
    return expected


async def verify(
    db: Db,
    storage: Storage,
    *,
    since: datetime | None = None,
    contact_id: str | None = None,
    jobs: int = 1,
    block: int = BLOCK,
    progress: bool = False,
) -> VerifyReport:
    """Walk the chain and re-hash the sealed files; a report of every problem found."""
    report = VerifyReport()
    rows = await ledger.entries(db)
    head = await ledger.chain_head(db)
    report.entries = len(rows)
    _walk_chain(rows, head, report)
    purged: dict[str, set[str]] = {}
    for row in rows:
        if row.kind == "purge":
            purged.setdefault(row.contact_id, set()).update(row.detail.get("files", []))
    seals = [
        row
        for row in rows
        if row.kind == "seal"
        and (contact_id is None or row.contact_id == contact_id)
        and (since is None or row.sealed_at >= since)
    ]
    report.contacts = len({row.contact_id for row in seals})
    work: list[tuple[LedgerEntry, str, str, int]] = []
    for entry in seals:
        expected = _check_manifest(storage, entry, purged.get(entry.contact_id, set()), report)
        work += [(entry, name, sha, size) for name, (sha, size) in sorted(expected.items())]
    report.files = len(work)
    _hash_all(storage, work, report, jobs=jobs, block=block, progress=progress)
    return report


def _hash_all(
    storage: Storage,
    work: list[tuple[LedgerEntry, str, str, int]],
    report: VerifyReport,
    *,
    jobs: int,
    block: int,
    progress: bool,
) -> None:
    by_key = {(entry.contact_id, name): (entry, sha, size) for entry, name, sha, size in work}
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(size for *_, size in work), unit="B", unit_scale=True, desc="verify")
    results: Iterable[tuple[str, str, str | None, int, str | None]]
    pool: ProcessPoolExecutor | None = None
    if jobs > 1 and len(work) > 1:
        pool = ProcessPoolExecutor(max_workers=jobs)
        results = pool.map(
            _hash_job,
            [storage] * len(work),
            [entry.contact_id for entry, *_ in work],
            [name for _, name, *_ in work],
            [block] * len(work),
            chunksize=1,
        )
    else:
        results = (_hash_job(storage, entry.contact_id, name, block) for entry, name, *_ in work)
    try:
        for contact, name, sha256, size, error in results:
            entry, expected_sha, expected_size = by_key[(contact, name)]
            report.bytes_hashed += size
            if bar is not None:
                bar.update(size)
            if error is not None:
                report.problems.append(Problem(contact, name, error, entry.seq))
            elif sha256 != expected_sha:
                report.problems.append(
                    Problem(
                        contact,
                        name,
                        "content changed (SHA-256 differs)"
                        + (f", size {size} not {expected_size}" if size != expected_size else ""),
                        entry.seq,
                    )
                )
    finally:
        if pool is not None:
            pool.shutdown()
        if bar is not None:
            bar.close()
