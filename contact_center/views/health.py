"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import text

from contact_center import appkeys

log = logging.getLogger(__name__)


async def ping_database(app: web.Application) -> None:
    async with app[appkeys.ENGINE].connect() as connection:
        await connection.execute(text("SELECT 1"))


async def ping_redis(app: web.Application) -> None:
    await app[appkeys.REDIS].ping()


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


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The database and Redis answer; 503 names the one that does not."""
    report = await readiness(request.app)
    ready = all(value == "ok" for value in report.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", **report}, status=200 if ready else 503
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
