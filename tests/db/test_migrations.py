"""Alembic migrations go up and down cleanly, and the app refuses an unmigrated database."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect

from contact_center.config import load_settings
from contact_center.db import engine as db
from contact_center.db.models import UNMODELLED
from contact_center.server.app import create_app

TABLES = {
    "users",
    "contacts",
    "contact_events",
    "chat_messages",
    "audit_log",
    "recording_ledger",
    "recording_chain_head",
    "compliance_checks",
    "contact_wrapups",
}


async def _tables(url: str) -> set[str]:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return names - {"alembic_version"} - UNMODELLED


async def test_upgrade_downgrade_upgrade(empty_database_url):
    assert await _tables(empty_database_url) == set()
    await asyncio.to_thread(db.upgrade, empty_database_url)
    assert await _tables(empty_database_url) == TABLES
    engine = db.create_engine(empty_database_url)
    try:
        await db.check_migrated(engine)
    finally:
        await engine.dispose()
    await asyncio.to_thread(db.downgrade, empty_database_url, "base")
    assert await _tables(empty_database_url) == set()
    await asyncio.to_thread(db.upgrade, empty_database_url)
    assert await _tables(empty_database_url) == TABLES


async def test_models_and_migrations_agree(database_url):
    """Autogenerate finds nothing to do: the migrations describe exactly the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    from contact_center.db.models import include_name

    engine = db.create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"include_name": include_name}),
                    SQLModel.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_app_refuses_an_unmigrated_database(tmp_path, aiohttp_client, redis_url):
    settings = load_settings(
        var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", redis_url=redis_url
    )
    with pytest.raises(db.DatabaseNotMigrated, match="contact-center db upgrade"):
        await aiohttp_client(create_app(settings))
