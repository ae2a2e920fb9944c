"""One cleanup context per resource: each opens, yields to the running app, and closes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from contact_center import keys
from contact_center.db import check_migrated, create_engine, session_factory
from contact_center.valkey import EmbeddedValkey

log = logging.getLogger(__name__)


async def valkey_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the embedded Valkey when no Redis URL is configured."""
    settings = app[keys.SETTINGS]
    if settings.redis_url:
        app[keys.VALKEY] = None
        app[keys.REDIS_URL] = settings.redis_url
        yield
        return
    # Started from the event loop's thread on purpose: the parent-death signal that stops
    # Valkey if we are killed is tied to the thread that forked it.
    server = EmbeddedValkey(settings.var_dir / "valkey")
    app[keys.REDIS_URL] = server.start()
    app[keys.VALKEY] = server
    try:
        yield
    finally:
        server.stop()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client = aioredis.Redis.from_url(
        app[keys.REDIS_URL], decode_responses=True, health_check_interval=30
    )
    await client.ping()
    app[keys.REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[keys.SETTINGS].database_url)
    try:
        await check_migrated(engine)
    except BaseException:
        await engine.dispose()
        raise
    app[keys.ENGINE] = engine
    app[keys.DB] = session_factory(engine)
    try:
        yield
    finally:
        await engine.dispose()


async def ping_database(app: web.Application) -> None:
    from sqlalchemy import text

    async with app[keys.ENGINE].connect() as connection:
        await connection.execute(text("SELECT 1"))


async def ping_redis(app: web.Application) -> None:
    await app[keys.REDIS].ping()


async def readiness(app: web.Application, limit_s: float = 2.0) -> dict[str, str]:
    """Ask each backing service to answer; report ``ok`` or the failure per service."""
    report: dict[str, str] = {}
    for name, probe in (("database", ping_database), ("redis", ping_redis)):
        try:
            await asyncio.wait_for(probe(app), limit_s)
            report[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a probe reports any failure
            log.warning("readiness probe failed", extra={"service": name, "error": repr(exc)})
            report[name] = f"error: {type(exc).__name__}"
    return report
