"""``POST /api/ws-token``: a single-use token for clients that cannot send the cookie."""

from __future__ import annotations

import json
import secrets

from aiohttp import web
from aiohttp_session import get_session
from pydantic import BaseModel, Field

from contact_center import appkeys, redis_keys
from contact_center.db.models import Role
from contact_center.identity.auth import require_role
from contact_center.openapi import Response, operation, respond

WS_TOKEN_TTL_S = 60


class WsToken(BaseModel):
    token: str = Field(description="Send it as `hello`'s `token`; it works once.")
    expires_in: int = Field(description="Seconds it stays valid.")


@operation(
    "A single-use WebSocket token", tag="signalling",
    description="For clients that cannot send the cookie on the WebSocket: the token stands "
    "for this session (a guest one is made if there is none) for one `hello`, within a minute. "
    "Needs the CSRF token (X-CSRF-Token).",
    responses={200: Response("The token", WsToken), 403: "The CSRF token is missing or wrong"},
)
@require_role(
    Role.CUSTOMER, Role.ADVISOR, Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN, allow_guest=True
)
async def ws_token(request: web.Request) -> web.Response:
    """A single-use token valid for a minute, for clients that cannot send the cookie."""
    session = await get_session(request)
    token = secrets.token_urlsafe(32)
    snapshot = {k: session.get(k) for k in ("ref", "uid", "sid", "role", "name", "vip", "pwtmp")}
    await request.app[appkeys.REDIS].set(
        redis_keys.ws_token(token), json.dumps(snapshot), ex=WS_TOKEN_TTL_S
    )
    return respond(WsToken(token=token, expires_in=WS_TOKEN_TTL_S))
