"""What a sealed contact directory holds: one manifest with every file's size, SHA-256 and,
for media, duration and packets per stream (demuxed, never decoded).

``manifest.json`` is written as ``canonical_json(manifest)`` (sorted keys, no spaces, UTF-8),
so the SHA-256 of the file's bytes *is* ``manifest_hash(manifest)``: the ledger stores that hash,
and one changed byte anywhere in the file (even in what JSON would call white space) shows.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Literal

import av
import av.error

__all__ = [
    "BLOCK",
    "MANIFEST",
    "MEDIA_SUFFIXES",
    "TIMELINE",
    "ManifestExists",
    "build_manifest",
    "canonical_json",
    "describe_media",
    "hash_file",
    "manifest_hash",
    "read_manifest",
    "write_manifest",
]

BLOCK = 1 << 20  # 1 MiB reads
MANIFEST = "manifest.json"
TIMELINE = "timeline.jsonl"
MEDIA_SUFFIXES = frozenset({".webm", ".mkv"})
VERSION = 1

Status = Literal["complete", "incomplete"]


class ManifestExists(FileExistsError):
    """A sealed manifest is never overwritten."""


def hash_stream(stream: IO[bytes], block: int = BLOCK) -> tuple[str, int]:
    """(SHA-256 hex digest, size in bytes) of what ``stream`` holds, read in ``block``-byte pieces."""
    digest = hashlib.sha256()
    size = 0
    if not isinstance(stream, io.RawIOBase | io.BufferedIOBase):  # e.g. an S3 body: read() only
        while chunk := stream.read(block):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size
    # Into one buffer, reused: no new bytes object per block (a quarter of the time, measured)
    view = memoryview(bytearray(block))
    while n := stream.readinto(view):
        digest.update(view[:n])
        size += n
    return digest.hexdigest(), size


def hash_file(path: str | os.PathLike[str], block: int = BLOCK) -> tuple[str, int]:
    """(SHA-256 hex digest, size in bytes) of a file, read in ``block``-byte pieces."""
    with open(path, "rb", buffering=0) as file:
        return hash_stream(file, block)


def describe_media(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Duration and packets per stream of a WebM/Matroska file, by demuxing (no decoding).

    A file without index and duration (its writer was killed) is scanned to its end: the
    duration is then the last packet's end. A file cut mid-cluster yields what was readable
    and ``"error"`` naming the failure.
    """
    result: dict[str, Any] = {"duration_s": None, "streams": []}
    try:
        container = av.open(str(path), "r")
    except (av.error.FFmpegError, OSError) as error:
        result["error"] = f"{type(error).__name__}: {error}"
        return result
    with container:
        streams: list[dict[str, Any]] = []
        counts: dict[int, int] = {}
        for stream in container.streams:
            streams.append(
                {
                    "index": stream.index,
                    "type": stream.type,
                    "codec": stream.codec_context.name if stream.codec_context else None,
                    "packets": 0,
                }
            )
        end = 0.0
        try:
            for packet in container.demux():
                if packet.size == 0:  # the flush packet at the end of each stream
                    continue
                counts[packet.stream.index] = counts.get(packet.stream.index, 0) + 1
                if packet.pts is not None and packet.time_base is not None:
                    stop = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    end = max(end, stop)
        except (av.error.FFmpegError, OSError) as error:
            result["error"] = f"{type(error).__name__}: {error}"
        if container.duration:
            result["duration_s"] = round(container.duration / 1_000_000, 3)
        else:
            result["duration_s"] = round(end, 3)
        for entry in streams:
            entry["packets"] = counts.get(entry["index"], 0)
        result["streams"] = streams
    return result


def _files(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and path.name != MANIFEST and not path.name.startswith(".manifest")
    )


def build_manifest(
    directory: str | os.PathLike[str],
    *,
    metadata: dict[str, Any],
    pauses: list[Any],
    previous_hash: str | None,
    status: Status,
    contact_id: str | None = None,
    block: int = BLOCK,
) -> dict[str, Any]:
    """The manifest of a contact directory (``contact_id`` defaults to the directory's name).

    ``files`` lists every file but the manifest (names relative to the directory, ``/``
    separated, sorted) with ``size``, ``sha256``, and for media ``duration_s`` and ``streams``
    (packets per stream). ``timeline`` repeats the timeline's hash (None without one);
    ``pauses`` are the spans recording was paused (as the caller gives them);
    ``previous_hash`` links to an earlier manifest of the same contact, if any.
    """
    if status not in ("complete", "incomplete"):
        raise ValueError(f"status must be 'complete' or 'incomplete', not {status!r}")
    root = Path(directory)
    files: list[dict[str, Any]] = []
    timeline: dict[str, Any] | None = None
    for path in _files(root):
        name = path.relative_to(root).as_posix()
        sha256, size = hash_file(path, block)
        entry: dict[str, Any] = {"name": name, "size": size, "sha256": sha256}
        if path.suffix.lower() in MEDIA_SUFFIXES:
            media = describe_media(path)
            entry["duration_s"] = media["duration_s"]
            entry["streams"] = media["streams"]
            if "error" in media:
                entry["media_error"] = media["error"]
        if name == TIMELINE:
            timeline = {"name": name, "size": size, "sha256": sha256}
        files.append(entry)
    return {
        "version": VERSION,
        "contact_id": contact_id or root.name,
        "status": status,
        "previous_hash": previous_hash,
        "files": files,
        "timeline": timeline,
        "pauses": list(pauses),
        "metadata": dict(metadata),
    }


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 (not ASCII-escaped): the bytes that are hashed."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def manifest_hash(manifest: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON: equal to the hash of ``manifest.json``'s bytes."""
    return hashlib.sha256(canonical_json(manifest)).hexdigest()


def write_manifest(directory: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically; refuse (``ManifestExists``) if there is one.

    The bytes go to a temporary file in the same directory, are fsynced, then hard-linked to
    ``manifest.json`` (a link, unlike a rename, fails when the target exists), so a reader sees
    no manifest or the whole one, and two sealers cannot both win.
    """
    root = Path(directory)
    target = root / MANIFEST
    if target.exists():
        raise ManifestExists(f"{target} exists: a sealed manifest is never overwritten")
    fd, temp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(canonical_json(manifest))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temp, target)
        except FileExistsError:
            raise ManifestExists(
                f"{target} exists: a sealed manifest is never overwritten"
            ) from None
    finally:
        os.unlink(temp)
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def read_manifest(data: bytes) -> dict[str, Any]:
    """Parse a manifest's bytes (raises ``ValueError`` for anything but a JSON object)."""
    value = json.loads(data.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("a manifest is a JSON object")
    return value
