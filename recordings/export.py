"""Export one sealed contact as a zip that can be checked offline, and the offline check.

The zip holds::

    manifest.json        the sealed manifest, byte for byte as stored
    files/<name>         every file the manifest lists (as stored; not those purged since)
    ledger/entry.json    the contact's seal entry: the hashed fields, entry_hash and the rest
    ledger/chain.json    the entries on each side of it (previous, next), the chain head at
                         export time, and the contact's purge entries
    SHA256SUMS           ``sha256sum -c`` lines: each file with the manifest's SHA-256,
                         manifest.json with the ledger's manifest_hash
    VERIFY.txt           how to check all this with sha256sum and Python's standard library

``export_contact`` reads everything from the ledger and the storage, writes the zip next to
its target and moves it into place, then checks the result with ``verify_export``: unless
``allow_problems``, an export that would not pass is not left behind (``ExportError`` lists
why). ``verify_export`` uses nothing but Python's standard library (it can be copied out and
run alone) and no database: what it proves is that the files are those the manifest lists,
that the manifest is the one the seal entry names, that the entry hashes as the chain requires
and links to the entries beside it. That the chain as a whole is intact (and this entry is
in it) is what ``python -m recordings verify`` checks against the ledger, or a comparison of
``entry_hash`` or the head with one published earlier.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recordings import ledger
from recordings.ledger import GENESIS, Db, LedgerEntry, canonical_time
from recordings.manifest import BLOCK, MANIFEST, MEDIA_SUFFIXES, read_manifest
from recordings.storage import Storage

__all__ = ["ExportError", "ExportResult", "export_contact", "verify_export"]

HASHED = ("seq", "kind", "contact_id", "manifest_hash", "prev_hash", "sealed_at")
ENTRY, CHAIN, SUMS, README = "ledger/entry.json", "ledger/chain.json", "SHA256SUMS", "VERIFY.txt"
FILES = "files/"


class ExportError(RuntimeError):
    """The contact cannot be exported, or its export would not pass ``verify_export``."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message + "".join(f"\n  {p}" for p in problems or []))
        self.problems = list(problems or [])


@dataclass
class ExportResult:
    path: Path
    contact_id: str
    seq: int
    files: list[str] = field(default_factory=list)  # names under files/
    purged: list[str] = field(default_factory=list)  # listed in the manifest, purged since
    bytes: int = 0  # of the files and the manifest
    problems: list[str] = field(default_factory=list)  # verify_export's (allow_problems only)


def _hashed(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "contact_id": entry.contact_id,
        "manifest_hash": entry.manifest_hash,
        "prev_hash": entry.prev_hash,
        "sealed_at": canonical_time(entry.sealed_at),
        "entry_hash": entry.entry_hash,
    }


def _entry_document(entry: LedgerEntry) -> dict[str, Any]:
    return {
        **_hashed(entry),
        "hashed_fields": list(HASHED),
        "status": entry.status,
        "retain_until": canonical_time(entry.retain_until) if entry.retain_until else None,
        "held": entry.held,
        "locations": dict(entry.locations),
    }


def _sums_line(sha256: str, name: str) -> str:
    # GNU sha256sum: a name holding a backslash or a line break is escaped, the line marked.
    if "\\" in name or "\n" in name:
        return "\\" + sha256 + "  " + name.replace("\\", "\\\\").replace("\n", "\\n")
    return sha256 + "  " + name


def _verify_text(entry: dict[str, Any], manifest: dict[str, Any], purged: list[str]) -> str:
    contact = entry["contact_id"]
    purged_note = (
        "Files the manifest lists that a later purge entry deleted are not in files/ and not in\n"
        f'SHA256SUMS (ledger/chain.json, "purges"): {", ".join(purged)}.\n\n'
        if purged
        else ""
    )
    return f"""Sealed recording of contact {contact}
=====================================================================

This archive can be checked without the contact center, its database or this software:
you need `sha256sum` (GNU coreutils) and Python 3 with its standard library. Unpack it
first (`unzip FILE.zip -d export && cd export`).

What is here
  manifest.json      the manifest written when the contact was sealed (canonical JSON:
                     sorted keys, no spaces, UTF-8), listing every file with its size and
                     SHA-256
  files/             the files it lists
  ledger/entry.json  the ledger entry of the seal (seq {entry["seq"]})
  ledger/chain.json  the entries just before and after it, and the chain head at export
  SHA256SUMS         the expected SHA-256 of every file and of manifest.json

{purged_note}1. The files are those the manifest lists, and the manifest is the sealed one:

     sha256sum -c SHA256SUMS

   Every line must say OK. The manifest.json line carries the ledger's manifest_hash,
   {entry["manifest_hash"]},
   the other lines the sha256 values that manifest.json lists.

2. SHA256SUMS says what manifest.json and the ledger entry say (so step 1 checked the
   right values), and the manifest names this contact:

     python3 -c '
     import json
     m = json.load(open("manifest.json", encoding="utf-8"))
     e = json.load(open("ledger/entry.json", encoding="utf-8"))
     c = json.load(open("ledger/chain.json", encoding="utf-8"))
     gone = {{n for p in c["purges"] for n in p["detail"]["files"]}}
     want = {{e["manifest_hash"] + "  manifest.json"}}
     want |= {{f["sha256"] + "  files/" + f["name"] for f in m["files"] if f["name"] not in gone}}
     have = set(open("SHA256SUMS", encoding="utf-8").read().splitlines())
     print("sums", want == have, "contact", m["contact_id"] == e["contact_id"] == {json.dumps(contact)})'

   It must print "sums True contact True".

3. The ledger entry hashes as the chain requires: entry_hash is the SHA-256 of the canonical
   JSON (sorted keys, no spaces, UTF-8) of the six fields {", ".join(HASHED)}:

     python3 -c '
     import hashlib, json
     e = json.load(open("ledger/entry.json", encoding="utf-8"))
     body = {{k: e[k] for k in e["hashed_fields"]}}
     data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
     print(hashlib.sha256(data.encode("utf-8")).hexdigest() == e["entry_hash"])'

   It must print True. This entry's entry_hash is
   {entry["entry_hash"]}.

4. The entry links to its neighbours: its prev_hash is the hash of the entry before it
   (ledger/chain.json "previous"; 64 zeros for the very first entry), and the entry after
   it, if there was one at export time ("next"), has this entry's hash as its prev_hash:

     python3 -c '
     import hashlib, json
     def h(x):
         body = {{k: x[k] for k in ("{'", "'.join(HASHED)}")}}
         data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
         return hashlib.sha256(data.encode("utf-8")).hexdigest()
     e = json.load(open("ledger/entry.json", encoding="utf-8"))
     c = json.load(open("ledger/chain.json", encoding="utf-8"))
     p, n = c["previous"], c["next"]
     print("previous", e["prev_hash"] == ("0" * 64 if e["seq"] == 1 else h(p)))
     print("next", n is None or (n["prev_hash"] == e["entry_hash"] == h(e) and h(n) == n["entry_hash"]))'

   It must print "previous True" and "next True".

5. That the chain as a whole is unbroken, and holds this entry, is known from the ledger:
   `python -m recordings verify` where it runs, or by comparing entry_hash, or the head in
   ledger/chain.json, with a value published or handed over earlier.

`python -m recordings verify-export FILE.zip` does all of the above in one go (with the
standard library only); it also checks the zip's own CRC-32 of every member.

Manifest status: {manifest.get("status")}; sealed at {entry["sealed_at"]}.
"""


def _zip_info(name: str, when: datetime) -> zipfile.ZipInfo:
    at = when.astimezone(UTC)
    info = zipfile.ZipInfo(name, date_time=(max(at.year, 1980), *at.timetuple()[1:6]))
    media = Path(name).suffix.lower() in MEDIA_SUFFIXES
    info.compress_type = zipfile.ZIP_STORED if media else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _write_zip(
    target: Path,
    storage: Storage,
    entry: LedgerEntry,
    manifest_bytes: bytes,
    manifest: dict[str, Any],
    chain: dict[str, Any],
    purged: set[str],
    result: ExportResult,
) -> None:
    contact = entry.contact_id
    entry_doc = _entry_document(entry)
    lines = [_sums_line(entry.manifest_hash, MANIFEST)]
    with zipfile.ZipFile(target, "w", allowZip64=True) as archive:
        archive.writestr(_zip_info(MANIFEST, entry.sealed_at), manifest_bytes)
        result.bytes += len(manifest_bytes)
        for item in manifest["files"]:
            name = item["name"]
            if name in purged:
                result.purged.append(name)
                continue
            info = _zip_info(FILES + name, entry.sealed_at)
            big = int(item["size"]) >= zipfile.ZIP64_LIMIT
            with (
                storage.open(contact, name) as source,
                archive.open(info, "w", force_zip64=big) as sink,
            ):
                while chunk := source.read(BLOCK):
                    sink.write(chunk)
                    result.bytes += len(chunk)
            result.files.append(name)
            lines.append(_sums_line(item["sha256"], FILES + name))
        for name, document in ((ENTRY, entry_doc), (CHAIN, chain)):
            text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
            archive.writestr(_zip_info(name, entry.sealed_at), text.encode("utf-8"))
        archive.writestr(_zip_info(SUMS, entry.sealed_at), ("\n".join(lines) + "\n").encode())
        readme = _verify_text(entry_doc, manifest, result.purged)
        archive.writestr(_zip_info(README, entry.sealed_at), readme.encode("utf-8"))


def _export(
    storage: Storage,
    entry: LedgerEntry,
    chain: dict[str, Any],
    purged: set[str],
    out: Path,
    allow_problems: bool,
) -> ExportResult:
    contact = entry.contact_id
    try:
        manifest_bytes = storage.open_range(contact, MANIFEST, 0, None)
    except FileNotFoundError:
        raise ExportError(f"contact {contact}: {MANIFEST} is not in {storage!r}") from None
    try:
        manifest = read_manifest(manifest_bytes)
    except ValueError as error:
        raise ExportError(f"contact {contact}: {MANIFEST} unreadable: {error}") from None
    if not isinstance(manifest.get("files"), list):
        raise ExportError(f"contact {contact}: {MANIFEST} lists no files")
    result = ExportResult(path=out, contact_id=contact, seq=entry.seq)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        try:
            _write_zip(temp, storage, entry, manifest_bytes, manifest, chain, purged, result)
        except FileNotFoundError as error:
            raise ExportError(f"contact {contact}: a listed file is not stored: {error}") from None
        result.problems = verify_export(temp)
        if result.problems and not allow_problems:
            raise ExportError(f"contact {contact}: the export would not verify", result.problems)
        try:
            os.link(temp, out)  # unlike a rename, fails when the target exists
        except FileExistsError:
            raise ExportError(f"{out} exists") from None
    finally:
        temp.unlink(missing_ok=True)
    return result


async def export_contact(
    db: Db,
    storage: Storage,
    contact_id: str,
    out: str | os.PathLike[str],
    *,
    allow_problems: bool = False,
) -> ExportResult:
    """Write ``out`` (a zip, never over an existing file) for the contact's last seal entry."""
    target = Path(out)
    if await asyncio.to_thread(target.exists):
        raise ExportError(f"{target} exists")
    own = await ledger.entries(db, contact_id=contact_id)
    seals = [e for e in own if e.kind == "seal"]
    if not seals:
        raise ExportError(f"no sealed contact {contact_id!r} in the ledger")
    entry = seals[-1]
    head = await ledger.chain_head(db)  # first: an entry appended after it is left out
    limit = head.seq if head else entry.seq
    around = {
        e.seq: e
        for e in await ledger.entries(db, seqs=[entry.seq - 1, entry.seq + 1])
        if e.seq <= limit
    }
    purges = [e for e in own if e.kind == "purge" and e.seq > entry.seq]
    purged = {name for p in purges for name in p.detail.get("files", [])}
    chain = {
        "genesis": GENESIS,
        "previous": _hashed(around[entry.seq - 1]) if entry.seq - 1 in around else None,
        "next": _hashed(around[entry.seq + 1]) if entry.seq + 1 in around else None,
        "head": {"seq": head.seq, "entry_hash": head.entry_hash} if head else None,
        "purges": [{**_hashed(p), "detail": p.detail} for p in purges],
        "exported_at": canonical_time(datetime.now(UTC)),
        "hashed_fields": list(HASHED),
    }
    return await asyncio.to_thread(_export, storage, entry, chain, purged, target, allow_problems)


def verify_export(path: str | os.PathLike[str]) -> list[str]:
    """Check an export zip offline; the problems found (none: it is sound).

    Standard library only, and nothing from outside this function, so that it can be copied
    out and run alone. Each problem names the member it is about.
    """
    import hashlib
    import json
    import zipfile
    import zlib

    zero = "0" * 64
    fields = ("seq", "kind", "contact_id", "manifest_hash", "prev_hash", "sealed_at")
    problems: list[str] = []

    def sums_line(sha256: str, name: str) -> str:  # as GNU sha256sum escapes a name
        if "\\" in name or "\n" in name:
            return "\\" + sha256 + "  " + name.replace("\\", "\\\\").replace("\n", "\\n")
        return sha256 + "  " + name

    def canonical(value: object) -> bytes:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")

    def entry_hash(entry: dict) -> str:
        return hashlib.sha256(canonical({k: entry[k] for k in fields})).hexdigest()

    def check_entry(label: str, entry: object) -> dict | None:
        if not isinstance(entry, dict) or any(k not in entry for k in (*fields, "entry_hash")):
            problems.append(f"{label}: not a ledger entry")
            return None
        if entry_hash(entry) != entry["entry_hash"]:
            problems.append(f"{label}: entry_hash does not match the entry (seq {entry['seq']})")
        return entry

    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        return [f"{path}: not a readable zip ({error})"]
    with archive:
        names = set(archive.namelist())

        def read(name: str) -> bytes | None:
            if name not in names:
                problems.append(f"{name}: missing from the export")
                return None
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as error:
                problems.append(f"{name}: damaged in the zip ({error})")
                return None

        def load(name: str) -> dict | None:
            data = read(name)
            if data is None:
                return None
            try:
                value = json.loads(data.decode("utf-8"))
            except ValueError as error:
                problems.append(f"{name}: not JSON ({error})")
                return None
            if not isinstance(value, dict):
                problems.append(f"{name}: not a JSON object")
                return None
            return value

        entry = check_entry("ledger/entry.json", load("ledger/entry.json"))
        chain = load("ledger/chain.json") or {}
        manifest_bytes = read("manifest.json")
        manifest: dict | None = None
        if manifest_bytes is not None:
            try:
                manifest = json.loads(manifest_bytes.decode("utf-8"))
            except ValueError:
                manifest = None
            if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
                problems.append("manifest.json: not a manifest")
                manifest = None
            elif canonical(manifest) != manifest_bytes:
                problems.append("manifest.json: not in canonical JSON")
        if entry is not None:
            if entry["kind"] != "seal":
                problems.append(f"ledger/entry.json: kind {entry['kind']!r} is not a seal")
            if (
                manifest_bytes is not None
                and hashlib.sha256(manifest_bytes).hexdigest() != entry["manifest_hash"]
            ):
                problems.append("manifest.json: does not match the entry's manifest_hash")
            if manifest is not None:
                if manifest.get("contact_id") != entry["contact_id"]:
                    problems.append("manifest.json: names another contact than the entry")
                if "status" in entry and manifest.get("status") != entry["status"]:
                    problems.append("manifest.json: status differs from the entry's")
            previous = chain.get("previous")
            if entry["seq"] == 1:
                if entry["prev_hash"] != zero:
                    problems.append("ledger/entry.json: the first entry's prev_hash is not zero")
            elif previous is None:
                problems.append("ledger/chain.json: the previous entry is missing")
            elif check_entry("ledger/chain.json previous", previous) is not None:
                if previous["seq"] != entry["seq"] - 1:
                    problems.append("ledger/chain.json previous: not the entry before")
                if previous["entry_hash"] != entry["prev_hash"]:
                    problems.append("ledger/entry.json: prev_hash is not the previous entry's")
            following = chain.get("next")
            if following is not None and check_entry("ledger/chain.json next", following):
                if following["seq"] != entry["seq"] + 1:
                    problems.append("ledger/chain.json next: not the entry after")
                if following["prev_hash"] != entry["entry_hash"]:
                    problems.append("ledger/chain.json next: does not link to this entry")
            head = chain.get("head")
            if not isinstance(head, dict) or not isinstance(head.get("seq"), int):
                problems.append("ledger/chain.json head: missing")
            elif head["seq"] < entry["seq"] or (following is None) != (head["seq"] == entry["seq"]):
                problems.append("ledger/chain.json head: does not fit this entry and the next")
            elif head["seq"] == entry["seq"] and head.get("entry_hash") != entry["entry_hash"]:
                problems.append("ledger/chain.json head: names this seq with another hash")
        purged: set[str] = set()
        for index, purge in enumerate(chain.get("purges") or []):
            label = f"ledger/chain.json purges[{index}]"
            if check_entry(label, purge) is None:
                continue
            detail = purge.get("detail")
            if not isinstance(detail, dict) or not isinstance(detail.get("files"), list):
                problems.append(f"{label}: no detail")
                continue
            if hashlib.sha256(canonical(detail)).hexdigest() != purge["manifest_hash"]:
                problems.append(f"{label}: detail does not match its hash")
            elif entry is not None and (
                purge["contact_id"] != entry["contact_id"] or purge["seq"] <= entry["seq"]
            ):
                problems.append(f"{label}: not a later purge of this contact")
            else:
                purged.update(str(name) for name in detail["files"])
        stored = {n[len("files/") :] for n in names if n.startswith("files/") and n != "files/"}
        expected_sums = set()
        if entry is not None:
            expected_sums.add(sums_line(entry["manifest_hash"], "manifest.json"))
        if manifest is not None:
            listed = set()
            for item in manifest["files"]:
                try:
                    name, sha256, size = str(item["name"]), str(item["sha256"]), int(item["size"])
                except (KeyError, TypeError, ValueError):
                    problems.append("manifest.json: a file entry without name, sha256 or size")
                    continue
                listed.add(name)
                member = "files/" + name
                if name in purged:
                    if name in stored:
                        problems.append(f"{member}: purged, yet in the export")
                    continue
                expected_sums.add(sums_line(sha256, member))
                if name not in stored:
                    problems.append(f"{member}: listed in the manifest, missing from the export")
                    continue
                digest, length = hashlib.sha256(), 0
                try:
                    with archive.open(member) as source:
                        while chunk := source.read(1 << 20):
                            digest.update(chunk)
                            length += len(chunk)
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as error:
                    problems.append(f"{member}: damaged in the zip ({error})")
                    continue
                if digest.hexdigest() != sha256:
                    problems.append(
                        f"{member}: content differs from the manifest (SHA-256"
                        + (f", size {length} not {size})" if length != size else ")")
                    )
            for name in sorted(stored - listed):
                problems.append(f"files/{name}: not in the manifest")
        sums = read("SHA256SUMS")
        if sums is not None and manifest is not None and entry is not None:
            have = {line for line in sums.decode("utf-8", "replace").splitlines() if line}
            if have != expected_sums:
                problems.append("SHA256SUMS: differs from what the manifest and entry say")
    return problems
