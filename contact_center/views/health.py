"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from contact_center.resources import readiness


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
