"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import text

from contact_center import appkeys
from contact_center.openapi import Response, operation, respond

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


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    database: str = Field(description="`ok`, or `error: <kind>`")
    redis: str = Field(description="`ok`, or `error: <kind>`")


@operation(
    "Liveness: the process is alive and its event loop answers", tag="operations",
    responses={200: Response("Alive", Health)},
)
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return respond(Health())


@operation(
    "Readiness: the database and Redis answer", tag="operations",
    responses={200: Response("Ready", Readiness), 503: Response("Not ready: which one", Readiness)},
)
async def readyz(request: web.Request) -> web.Response:
    """The database and Redis answer; 503 names the one that does not."""
    report = Readiness(status="ready", **(await readiness(request.app)))
    if report.database != "ok" or report.redis != "ok":
        report.status = "not ready"
    return respond(report, status=200 if report.status == "ready" else 503)


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
