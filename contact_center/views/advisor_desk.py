"""The advisor console's JSON: a contact's customer context and the transfer picker's choices.

Both are for the advisor holding the contact (connected or in wrap-up) and for supervisors;
anyone else gets 403 (audited). The console's fixed lists (wrap-up outcomes, canned replies)
come with its page (``desk_config``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contact_center import appkeys
from contact_center.canned_replies import load_canned_replies
from contact_center.contacts.context import CustomerContextView
from contact_center.db.models import Role
from contact_center.errors import Forbidden
from contact_center.identity.auth import require_role
from contact_center.openapi import Response, operation, respond
from contact_center.protocol import Language, SkillName

JsonHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CONTACT = r"{contact_id:[A-Za-z0-9_-]{1,64}}"


class TransferQuery(BaseModel):
    """The transfer being considered."""

    model_config = ConfigDict(extra="forbid")

    skill: SkillName = "general"
    level: Annotated[int, Field(ge=1, le=5)] = 1
    language: Language | None = Field(default=None, description="Default: the contact's")


class TransferOptions(BaseModel):
    """What the transfer picker offers, and who could take the transfer considered."""

    skills: list[str] = Field(description="Skills advisors have (accounts and the router)")
    languages: list[str] = Field(description="The routing policy's languages")
    now: list[str] = Field(description="Advisors (names) who could be offered it at once")
    later: list[str] = Field(
        description="Signed in with the skill and language, but busy, away or in wrap-up"
    )
    servable: bool = Field(
        description="False: nobody but you signed in could take it (session.transfer refuses "
        "it with nobody_can_serve unless queue_anyway)"
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def api(handler: JsonHandler) -> JsonHandler:
    """Forbidden -> 403, bad query -> 400, as JSON."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Forbidden as error:
            return _error(403, error.code, str(error))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return _error(400, "bad_field", f"{where}: {first.get('msg', 'invalid')}")

    return wrapped


_RESPONSES: dict[int, Response | str] = {
    401: "Not signed in",
    403: "Not an advisor or a supervisor, or not the advisor holding this contact (audited)",
}


@operation(
    "A contact's customer context: who, earlier contacts with outcomes, the bot's part",
    tag="advisor",
    responses={200: Response("The context", CustomerContextView), **_RESPONSES},
)
@require_role(Role.ADVISOR, Role.SUPERVISOR, Role.ADMIN)
@api
async def contact_context(request: web.Request) -> web.Response:
    svc = request.app[appkeys.CONTACTS]
    contact = await svc.desk_contact(request[appkeys.IDENTITY], request.match_info["contact_id"])
    return respond(await svc.customer_context(contact))


@operation(
    "The transfer picker: skills and languages that exist, who could take it",
    tag="advisor",
    query=TransferQuery,
    responses={200: Response("The choices", TransferOptions), 400: "Bad query", **_RESPONSES},
)
@require_role(Role.ADVISOR, Role.SUPERVISOR, Role.ADMIN)
@api
async def transfer_options(request: web.Request) -> web.Response:
    query = TransferQuery.model_validate(dict(request.query))
    identity = request[appkeys.IDENTITY]
    svc = request.app[appkeys.CONTACTS]
    contact = await svc.desk_contact(identity, request.match_info["contact_id"])
    choices = await svc.transfer_choices(
        contact, skills={query.skill: query.level}, language=query.language,
        exclude=identity.user_id if identity.role is Role.ADVISOR else None,
    )
    return respond(
        TransferOptions(
            skills=choices.skills,
            languages=choices.languages,
            now=choices.now,
            later=choices.later,
            servable=bool(choices.now or choices.later),
        )
    )


def desk_config(app: web.Application) -> dict[str, Any]:
    """What the console page carries: the wrap-up outcome codes, the canned replies."""
    return {
        "outcomes": list(app[appkeys.SETTINGS].wrapup_outcomes),
        "canned": {
            language: [reply.model_dump() for reply in replies]
            for language, replies in app[appkeys.CANNED_REPLIES].items()
        },
    }


def setup(app: web.Application) -> None:
    app[appkeys.CANNED_REPLIES] = load_canned_replies(app[appkeys.SETTINGS].canned_replies)
    app.router.add_get(f"/api/contacts/{_CONTACT}/context", contact_context)
    app.router.add_get(f"/api/contacts/{_CONTACT}/transfer-options", transfer_options)

