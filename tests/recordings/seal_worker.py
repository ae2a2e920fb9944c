"""Run as a process: append COUNT seal entries to the ledger at URL (contacts PREFIX-0...)."""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings.ledger import append_seal


async def main(url: str, prefix: str, count: int) -> None:
    engine = create_async_engine(url, connect_args={"timeout": 60} if "sqlite" in url else {})
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    for index in range(count):
        await append_seal(
            sessions, contact_id=f"{prefix}-{index}", manifest_hash=f"{index:064x}",
            status="complete", locations={}, retain_until=None,
        )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
