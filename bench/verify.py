"""Throughput of ``recordings.verify``: ``python -m bench.verify``.

Generates CONTACTS sealed contact directories in a temporary directory (each MB_PER_CONTACT
of data in two files, 80 % and 20 %, plus a real ``timeline.jsonl``), sealed one by one with
``seal_contact`` into a SQLite ledger, then times ``verify`` over all of them for each job
count: MB/s (10^6 bytes hashed per second, the manifests included) and contacts/s.

Each job count is timed twice per cache state: ``warm`` (the files in the page cache, as
just written) and ``cold`` (each file dropped from this machine's page cache first with
``posix_fadvise(DONTNEED)``, after an ``fsync``; only this bench's files, nothing global; a
virtual disk's host may still cache). One line of ``hashlib`` SHA-256 over memory gives the
ceiling of one core. Bounds: ``--max-mb`` of data (refused above it, or with less than twice
that free on the disk) and ``--max-seconds`` (no new run starts past it). Progress on stderr;
last line JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings.ledger import ChainHead, LedgerEntry
from recordings.seal import seal_contact
from recordings.storage import LocalStorage
from recordings.timeline import TimelineWriter
from recordings.verify import verify

MB = 1_000_000
CHUNK = 1 << 20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write_data(path: Path, size: int, block: bytes, salt: int) -> None:
    """``size`` bytes of ``block`` with a per-chunk counter (every file distinct)."""
    with open(path, "wb") as file:
        written, index = 0, 0
        while written < size:
            piece = (salt * 1_000_003 + index).to_bytes(8, "little") + block[8:]
            piece = piece[: size - written]
            file.write(piece)
            written += len(piece)
            index += 1
        file.flush()
        os.fsync(file.fileno())


def _timeline(directory: Path, contact: int) -> None:
    with TimelineWriter(directory) as timeline:
        timeline.append("media_open", track="customer-video-0")
        for turn in range(20):
            timeline.append("chat", who="customer" if turn % 2 else "bot", text=f"turn {turn}")
        timeline.append("media_close", track="customer-video-0", contact=contact)


async def generate(
    root: Path, db: async_sessionmaker[AsyncSession], contacts: int, size: int
) -> int:
    """Seal ``contacts`` directories of ``size`` bytes of media each; total bytes on disk."""
    block = os.urandom(CHUNK)
    total = 0
    started = time.monotonic()
    for index in range(contacts):
        directory = root / f"contact-{index:05d}"
        directory.mkdir(parents=True)
        video = size * 4 // 5
        _write_data(directory / "customer-video-0.bin", video, block, 2 * index)
        _write_data(directory / "customer-audio-0.bin", size - video, block, 2 * index + 1)
        _timeline(directory, index)
        await seal_contact(directory, db, metadata={"bench": True})
        total += sum(p.stat().st_size for p in directory.iterdir())
        if (index + 1) % 50 == 0 or index + 1 == contacts:
            log(
                f"sealed {index + 1}/{contacts} ({total / MB:.0f} MB, {time.monotonic() - started:.1f} s)"
            )
    return total


def drop_cache(root: Path) -> None:
    """Evict this bench's files (only them) from the page cache."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def hashlib_ceiling(mb: int = 256) -> float:
    """MB/s of SHA-256 over memory on one core."""
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(mb * MB // CHUNK):
        digest.update(block)
    return (mb * MB // CHUNK) * CHUNK / MB / (time.perf_counter() - start)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def plain_hashlib(root: Path) -> tuple[float, int]:
    """(seconds, bytes): one stream of ``hashlib.sha256`` over the same files, 1 MiB reads."""
    start, total = time.perf_counter(), 0
    for path in _files(root):
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
                total += len(chunk)
        digest.hexdigest()
    return time.perf_counter() - start, total


def sha256sum(root: Path) -> float | None:
    """Seconds of coreutils' ``sha256sum`` over the same files (None when it is missing)."""
    binary = shutil.which("sha256sum")
    if binary is None:
        return None
    files = [str(p) for p in _files(root)]
    start = time.perf_counter()
    for i in range(0, len(files), 500):
        subprocess.run([binary, *files[i : i + 500]], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def baselines(root: Path, cache: str) -> dict[str, Any]:
    """The plain ceilings of this cache state, measured between the verify runs."""
    if cache == "cold":
        drop_cache(root)
    seconds, total = plain_hashlib(root)
    if cache == "cold":
        drop_cache(root)
    coreutils = sha256sum(root)
    return {
        "cache": cache,
        "hashlib_mb_per_s": round(total / MB / seconds, 1),
        "sha256sum_mb_per_s": None if coreutils is None else round(total / MB / coreutils, 1),
    }


def _median_ceilings(cache: str, measured: list[dict[str, Any]]) -> dict[str, Any]:
    coreutils = [m["sha256sum_mb_per_s"] for m in measured if m["sha256sum_mb_per_s"]]
    return {
        "cache": cache,
        "runs": len(measured),
        "hashlib_mb_per_s": round(statistics.median(m["hashlib_mb_per_s"] for m in measured), 1),
        "sha256sum_mb_per_s": round(statistics.median(coreutils), 1) if coreutils else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    size = int(args.mb_per_contact * MB)
    planned = args.contacts * size
    if planned > args.max_mb * MB:
        raise SystemExit(f"{planned / MB:.0f} MB planned is over --max-mb {args.max_mb}")
    parent = Path(args.dir or tempfile.gettempdir())
    free = shutil.disk_usage(parent).free
    if free < 2 * planned:
        raise SystemExit(f"{free / MB:.0f} MB free in {parent}: need {2 * planned / MB:.0f}")
    jobs_list = [int(j) for j in args.jobs.split(",") if j.strip()]
    deadline = time.monotonic() + args.max_seconds
    with tempfile.TemporaryDirectory(prefix="bench-verify-", dir=parent) as temp:
        base = Path(temp)
        root = base / "recordings"
        engine = create_async_engine(f"sqlite+aiosqlite:///{base / 'ledger.db'}")
        tables = [LedgerEntry.__table__, ChainHead.__table__]  # type: ignore[attr-defined]
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all, tables=tables)
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        try:
            started = time.monotonic()
            total = await generate(root, sessions, args.contacts, size)
            generate_s = time.monotonic() - started
            storage = LocalStorage(root)
            runs: list[dict[str, Any]] = []
            ceilings: dict[str, dict[str, Any]] = {}
            skipped = 0
            for cache in ("warm", "cold"):
                measured: list[dict[str, Any]] = []
                for repeat in range(args.repeat):
                    # the ceilings interleaved with the verify runs: the same noise for both
                    measured.append(baselines(root, cache))
                    log(f"{cache} ceilings #{repeat}: {measured[-1]}")
                    for jobs in jobs_list:
                        if time.monotonic() > deadline:
                            skipped += 1
                            continue
                        if cache == "cold":
                            drop_cache(root)
                        start = time.perf_counter()
                        report = await verify(sessions, storage, jobs=jobs)
                        seconds = time.perf_counter() - start
                        if not report.ok:
                            raise SystemExit(f"verify found problems: {report.problems[:3]}")
                        result = {
                            "cache": cache,
                            "jobs": jobs,
                            "repeat": repeat,
                            "seconds": round(seconds, 3),
                            "mb_per_s": round(report.bytes_hashed / MB / seconds, 1),
                            "contacts_per_s": round(report.contacts / seconds, 1),
                            "files": report.files,
                            "bytes_hashed": report.bytes_hashed,
                        }
                        runs.append(result)
                        log(
                            f"{cache} jobs={jobs} #{repeat}: {seconds:.2f} s,"
                            f" {result['mb_per_s']} MB/s, {result['contacts_per_s']} contacts/s"
                        )
                ceilings[cache] = _median_ceilings(cache, measured)
        finally:
            await engine.dispose()
    summary = []
    for cache in ("warm", "cold"):
        for jobs in jobs_list:
            mine = [r for r in runs if r["cache"] == cache and r["jobs"] == jobs]
            if mine:
                summary.append(
                    {
                        "cache": cache,
                        "jobs": jobs,
                        "runs": len(mine),
                        "mb_per_s_median": round(statistics.median(r["mb_per_s"] for r in mine), 1),
                        "contacts_per_s_median": round(
                            statistics.median(r["contacts_per_s"] for r in mine), 1
                        ),
                    }
                )
                row, ceiling = summary[-1], ceilings[cache]
                row["ratio_to_hashlib"] = round(row["mb_per_s_median"] / ceiling["hashlib_mb_per_s"], 2)
                if ceiling["sha256sum_mb_per_s"]:
                    row["ratio_to_sha256sum"] = round(
                        row["mb_per_s_median"] / ceiling["sha256sum_mb_per_s"], 2
                    )
    return {
        "bench": "recordings.verify",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "contacts": args.contacts,
        "mb_per_contact": args.mb_per_contact,
        "data_mb": round(total / MB, 1),
        "data_bytes": total,
        "generate_seconds": round(generate_s, 1),
        "hashlib_one_core_mb_per_s": round(hashlib_ceiling(), 1),
        "ceilings": list(ceilings.values()),
        "summary": summary,
        "runs": runs,
        "skipped_runs": skipped,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--mb-per-contact", type=float, default=5.0)
    parser.add_argument("--jobs", default="1,2", help="comma-separated job counts")
    parser.add_argument("--repeat", type=int, default=2, help="runs per job count and cache")
    parser.add_argument("--max-mb", type=int, default=4000, help="refuse more data than this")
    parser.add_argument("--max-seconds", type=float, default=600, help="no new run after this")
    parser.add_argument("--dir", help="where the temporary directory goes (default: TMPDIR)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.contacts < 1 or args.mb_per_contact <= 0 or args.repeat < 1:
        raise SystemExit("--contacts, --mb-per-contact and --repeat must be positive")
    result = asyncio.run(run(args))
    for row in result["summary"]:
        print(
            f"{row['cache']:4} jobs={row['jobs']}: {row['mb_per_s_median']} MB/s,"
            f" {row['contacts_per_s_median']} contacts/s (median of {row['runs']}),"
            f" {row['ratio_to_hashlib']} of plain hashlib,"
            f" {row.get('ratio_to_sha256sum')} of sha256sum"
        )
    print(f"hashlib SHA-256, one core, memory: {result['hashlib_one_core_mb_per_s']} MB/s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
