"""JSON endpoints for the consoles."""

from __future__ import annotations

from aiohttp import web

from contact_center import appkeys
from contact_center.db.models import Role
from contact_center.identity.auth import require_role


@require_role(Role.SUPERVISOR, Role.ADMIN)
async def supervisor_snapshot(request: web.Request) -> web.Response:
    """Queues per language and skill: waiting, longest wait, advisors by state, service level."""
    return web.json_response(await request.app[appkeys.ROUTER].snapshot())


def setup(app: web.Application) -> None:
    app.router.add_get("/api/supervisor/snapshot", supervisor_snapshot)
