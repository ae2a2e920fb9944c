"""Shared fixtures: a real Redis (the machine's when CC_TEST_REDIS_URL is set, else an embedded
Valkey) and a real database (PostgreSQL when CC_TEST_DATABASE_URL is set, else SQLite)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from contact_center.valkey import EmbeddedValkey

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis for this test session."""
    url = os.environ.get("CC_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), persist=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on a Redis database flushed before and after the test."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


def _create_pg_database(base_url: str) -> tuple[str, str]:
    """Create a database of its own for this test session next to ``base_url``'s."""
    import asyncio
    import uuid

    import asyncpg

    name = f"cc_test_{uuid.uuid4().hex[:12]}"
    plain = base_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(plain)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return name, base_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(base_url: str, name: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def empty_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A new, empty database for this test session (PostgreSQL when CC_TEST_DATABASE_URL is set)."""
    base = os.environ.get("CC_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    name, url = _create_pg_database(base)
    try:
        yield url
    finally:
        _drop_pg_database(base, name)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database shared by the test session."""
    from contact_center import db

    base = os.environ.get("CC_TEST_DATABASE_URL")
    if not base:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'app.db'}"
        db.upgrade(url)
        yield url
        return
    name, url = _create_pg_database(base)
    db.upgrade(url)
    try:
        yield url
    finally:
        _drop_pg_database(base, name)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch):
    """Settings for an app on the test database and Redis, with its own data directory."""
    from contact_center.config import load_settings

    for key in list(os.environ):
        if key.startswith("CC_") and not key.startswith("CC_TEST_"):
            monkeypatch.delenv(key)
    return load_settings(
        var_dir=tmp_path / "var",
        database_url=database_url,
        redis_url=redis_url,
        secret_key="test-secret-" + "x" * 40,
        log_json=False,
        bot_enabled=False,  # tests that want the bot turn it on (tests/chatbot)
    )


@pytest.fixture
async def client(aiohttp_client, settings, redis_client):  # type: ignore[no-untyped-def]
    """A test client on the real app (real DB, real Redis flushed around the test)."""
    from contact_center.app import create_app

    return await aiohttp_client(create_app(settings))
