"""JSON endpoints for the consoles."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from contact_center import appkeys
from contact_center.db.models import Role
from contact_center.identity.auth import require_role
from contact_center.openapi import Response, operation, respond


class QueueGroup(BaseModel):
    """One (language, skill) of the floor."""

    language: str
    skill: str
    waiting: int
    longest_wait_s: float
    agents: dict[str, int] = Field(description="Advisors by state")
    answered: int
    answered_in_sl: int
    service_level: float | None = Field(description="Share answered within the target; None before any")


class SupervisorSnapshot(BaseModel):
    """The router's view of the floor (routing.scoring.build_snapshot)."""

    time: float
    service_level_s: float
    waiting: int
    agents: dict[str, int]
    groups: list[QueueGroup]


@operation(
    "The floor: queues per language and skill", tag="supervisor",
    responses={
        200: Response("The snapshot", SupervisorSnapshot),
        401: "Not signed in",
        403: "Not a supervisor or an admin",
    },
)
@require_role(Role.SUPERVISOR, Role.ADMIN)
async def supervisor_snapshot(request: web.Request) -> web.Response:
    """Queues per language and skill: waiting, longest wait, advisors by state, service level."""
    snapshot = await request.app[appkeys.ROUTER].snapshot()
    return respond(SupervisorSnapshot.model_validate(snapshot))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/supervisor/snapshot", supervisor_snapshot)
