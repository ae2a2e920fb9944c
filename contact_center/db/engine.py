"""The async database engine, sessions, and the migration check made at start."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet
from sqlmodel.ext.asyncio.session import AsyncSession

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "contact-center db upgrade"
#: seconds to open a PostgreSQL connection, and to wait for one of the pool's
CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 10
#: an execution option: this connection's transactions only read (on SQLite a deferred BEGIN,
#: which takes no write lock; see ``create_engine``)
READ_ONLY = "contact_center_read_only"


class DatabaseNotMigrated(RuntimeError):
    """The database schema is not at the code's revision."""


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def create_engine(database_url: str) -> AsyncEngine:
    """An engine with SQLite made safe for concurrent writers (WAL, busy timeout, foreign keys,
    every transaction begun with ``BEGIN IMMEDIATE``).

    The sqlite3 driver's own transaction handling is off: it begins a transaction only before
    an INSERT, UPDATE or DELETE, so a transaction's reads ran outside it and a read-then-write
    transaction could overwrite what another wrote in between (a lost update). SQLAlchemy
    emits the BEGIN instead, and an IMMEDIATE one: the transaction takes the write lock at its
    start, waiting for it (busy timeout), rather than at its first write, where SQLite refuses
    at once ("database is locked") if another connection wrote since the transaction's first
    read (waiting there could deadlock). A ``reading`` session begins a plain (deferred) one.

    A connection is rolled back before it is closed. A task cancelled while its statement runs
    (a timeout, a shutdown, a cancelled handler) has its connection invalidated and closed, and the
    sqlite3 driver closes a connection whose statements are still alive (the cancelled one, in
    a reference cycle) only when they are collected: until the garbage collector came by, the
    open transaction kept the write lock and every writer waited (seen: over 30 s, then
    "database is locked"). The rollback ends the transaction and aborts those statements.
    """
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(database_url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # the driver emits no BEGIN: _begin does
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL: a crash of the app loses nothing; only a power cut may lose the
            # last commits (PostgreSQL is the production database).
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "close")
        def _roll_back_before_closing(dbapi_connection: Any, _record: Any) -> None:
            # In the event loop's greenlet (a close or an invalidation) the rollback is awaited,
            # shielded: a second cancel does not stop it. Outside it (the garbage collector
            # closing a lost connection) there is nothing to await with: the driver closes it.
            if not in_greenlet():
                return
            with contextlib.suppress(Exception):
                await_only(asyncio.shield(dbapi_connection.driver_connection.rollback()))

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Connection) -> None:
            deferred = connection.get_execution_options().get(READ_ONLY, False)
            connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

        return engine
    # pool_pre_ping: a connection the database dropped (a restart) is found dead when lent and
    # replaced, so the first request after the database is back works; the connect timeout
    # keeps a request from waiting asyncpg's default minute on a database that does not answer.
    return create_async_engine(
        database_url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args={"timeout": CONNECT_TIMEOUT_S},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose work is committed on success and rolled back on error."""
    async with factory() as session, session.begin():
        yield session


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for sessions that only read (see ``reading``)."""
    return engine.execution_options(**{READ_ONLY: True})


@asynccontextmanager
async def reading(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that only reads: on SQLite it neither waits for the write lock nor holds it.

    For reads on a hot path (a writer's batch would make them wait) and long ones (they would
    make every writer wait). A write in it may fail with "database is locked" (see
    ``create_engine``): use ``transaction`` for anything that writes.
    """
    async with factory() as session:
        await session.connection(execution_options={READ_ONLY: True})
        yield session


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def check_migrated(engine: AsyncEngine) -> None:
    """Refuse to run on a database that is not at the head revision."""
    async with read_only(engine).connect() as connection:  # (a start waits for no writer)
        current = await connection.run_sync(_current_revision)
    head = head_revision()
    if current != head:
        raise DatabaseNotMigrated(
            f"the database is at revision {current or 'none (empty)'} but this version needs "
            f"{head}: run `{UPGRADE_COMMAND}` first"
        )


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> None:
    from alembic import command

    command.current(alembic_config(database_url), verbose=False)
