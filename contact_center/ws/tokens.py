"""Hello tokens for clients that cannot send the cookie: ``POST /api/ws-token`` (single use,
a minute), the rejoin token a cookieless hello gets for its next one, and the identities a
cookieless hello starts from (the bank's signed token, or a new guest)."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from aiohttp import web
from aiohttp_session import get_session
from pydantic import BaseModel, Field

from contact_center import appkeys, redis_keys
from contact_center.db.models import Role
from contact_center.errors import ErrorCode, Forbidden
from contact_center.identity import audit
from contact_center.identity.auth import Identity, identity_from_session, require_role
from contact_center.identity.bank_token import BankTokenError, bank_customer
from contact_center.openapi import Response, operation, respond

WS_TOKEN_TTL_S = 60
#: A cookieless client's next hello (after a dropped connection) must come within this.
REJOIN_TTL_S = 3600
_SNAPSHOT_KEYS = ("ref", "uid", "sid", "role", "name", "vip", "pwtmp")


async def mint(request: web.Request, snapshot: dict[str, Any], *, ttl_s: int) -> str:
    """A single-use hello token standing for ``snapshot`` (an identity's session fields)."""
    token = secrets.token_urlsafe(32)
    await request.app[appkeys.REDIS].set(redis_keys.ws_token(token), json.dumps(snapshot), ex=ttl_s)
    return token


def snapshot_of(identity: Identity) -> dict[str, Any]:
    """The session fields that ``identity_from_session`` reads back as ``identity``."""
    return {
        "ref": identity.ref,
        "uid": identity.user_id,
        "sid": identity.session_id,
        "role": identity.role.value,
        "name": identity.display_name,
        "vip": identity.vip,
        "pwtmp": identity.must_change_password,
    }


def new_guest() -> Identity:
    """A new guest customer with no cookie (the widget on another site's page)."""
    identity = identity_from_session(
        {"ref": f"guest:{uuid.uuid4().hex}", "role": Role.CUSTOMER.value, "name": "Guest"}
    )
    assert identity is not None
    return identity


async def bank_identity(request: web.Request, token: str) -> Identity:
    """Sign the bank's customer in from its signed token, with a server-side session but no
    cookie; a refused token is audited and raised as ``Forbidden`` with its reason."""
    app = request.app
    verifier = app[appkeys.BANK_TOKENS]
    if verifier is None:
        raise Forbidden(
            "signing in with the bank's identity is off on this server (no CC_BANK_TOKEN_SECRET)",
            code=ErrorCode.UNAUTHENTICATED,
        )
    db = app[appkeys.DB]
    try:
        claims = await verifier.verify(token)
        user = await bank_customer(db, claims)
    except BankTokenError as exc:
        await audit.record(
            db, actor="bank", action="signin.bank_token_refused", address=request.remote,
            detail={"code": exc.code, "via": "websocket"},
        )
        raise Forbidden(f"{exc.code}: {exc}", code=ErrorCode.UNAUTHENTICATED) from None
    assert user.id is not None
    identity = identity_from_session(
        {
            "ref": f"user:{user.id}", "uid": user.id, "sid": await app[appkeys.SESSIONS].create(user),
            "role": Role.CUSTOMER.value, "name": user.display_name, "vip": user.vip,
        }
    )
    assert identity is not None
    await audit.record(
        db, actor=identity.ref, action="signin.bank_token", address=request.remote,
        detail={"sub": claims.sub, "vip": claims.vip, "via": "websocket"},
    )
    return identity


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
    snapshot = {k: session.get(k) for k in _SNAPSHOT_KEYS}
    token = await mint(request, snapshot, ttl_s=WS_TOKEN_TTL_S)
    return respond(WsToken(token=token, expires_in=WS_TOKEN_TTL_S))
