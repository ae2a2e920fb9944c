"""A PostgreSQL database of a bench's own: created with a unique name, dropped afterwards."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator


def _admin(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@contextlib.asynccontextmanager
async def scratch_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url`` (a SQLAlchemy asyncpg URL);
    yields its URL and drops it (``WITH (FORCE)``) on the way out."""
    import asyncpg

    name = f"{prefix}_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(_admin(server_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        conn = await asyncpg.connect(_admin(server_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
