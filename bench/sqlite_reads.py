"""What a read-only transaction costs on SQLite when it takes the write lock (``transaction``,
``BEGIN IMMEDIATE``) and when it does not (``reading``, a deferred ``BEGIN``).

    python -m bench.sqlite_reads --seconds 5 --writers 4 --readers 4

On a temporary SQLite file, through the app's engine (``contact_center.db.engine``): a table
of ``--rows`` rows; ``--writers`` tasks each run read-then-write transactions (read the last
row's number, insert the next, as a chat line does) back to back, while ``--readers`` tasks run
read-only transactions (a count over the whole table, then the last row) back to back, for ``--seconds``
with the readers in ``transaction`` and then as long with them in ``reading``. Reported per
mode: transactions per second and latency p50 / p99 (ms) of each kind. Last line one JSON
object; bounded in time; nothing but a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.db.engine import create_engine, reading, session_factory, transaction

LAST = sa.text("SELECT n FROM line ORDER BY id DESC LIMIT 1")
Opener = Callable[[async_sessionmaker[AsyncSession]], AbstractAsyncContextManager[AsyncSession]]


def _summary(latencies: list[float], seconds: float) -> dict[str, float]:
    if not latencies:
        return {"per_s": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(latencies)
    return {
        "per_s": round(len(ordered) / seconds, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


async def _load(engine: AsyncEngine, rows: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(sa.text("CREATE TABLE line (id INTEGER PRIMARY KEY, n INTEGER)"))
        await connection.execute(
            sa.text("INSERT INTO line (n) VALUES (:n)"), [{"n": n} for n in range(rows)]
        )


async def _round(
    factory: async_sessionmaker[AsyncSession], opener: Opener, args: argparse.Namespace
) -> dict[str, Any]:
    writes: list[float] = []
    reads: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + args.seconds

    async def writer() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                async with transaction(factory) as session:
                    db = await session.connection()
                    last = (await db.execute(LAST)).scalar_one()
                    await db.execute(sa.text("INSERT INTO line (n) VALUES (:n)"), {"n": last + 1})
            except Exception as error:  # counted: the bench reports failures, not hides them
                errors.append(type(error).__name__)
                continue
            writes.append(time.perf_counter() - started)

    async def reader() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                async with opener(factory) as session:
                    db = await session.connection()
                    await db.execute(sa.text("SELECT count(*) FROM line WHERE n % 7 = 3"))
                    await db.execute(LAST)
            except Exception as error:
                errors.append(type(error).__name__)
                continue
            reads.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(
        *(writer() for _ in range(args.writers)), *(reader() for _ in range(args.readers))
    )
    seconds = time.monotonic() - started
    return {
        "writes": _summary(writes, seconds),
        "reads": _summary(reads, seconds),
        "errors": len(errors),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cc-sqlite-reads-") as directory:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(directory) / 'reads.db'}")
        try:
            await _load(engine, args.rows)
            factory = session_factory(engine)
            result: dict[str, Any] = {"load_average": [os.getloadavg()[0]]}
            for name, opener in (("transaction", transaction), ("reading", reading)):
                result[f"readers_in_{name}"] = await _round(factory, opener, args)
            result["load_average"].append(os.getloadavg()[0])
            return result
        finally:
            await engine.dispose()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per mode (at most 60)")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    args.seconds = min(args.seconds, 60.0)
    return args


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse_args()))))
