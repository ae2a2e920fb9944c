"""``POST /api/identity/bank-token``: the bank's app signs its customer in with a signed token
(``identity.bank_token``) instead of a password."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp_session import get_session
from pydantic import BaseModel, Field, ValidationError

from contact_center import appkeys
from contact_center.identity import audit
from contact_center.identity.auth import sign_in
from contact_center.identity.bank_token import BankTokenError, bank_customer
from contact_center.openapi import Response, operation, respond

log = logging.getLogger(__name__)

class BankTokenBody(BaseModel):
    """The token, as the bank's app received it from the bank's servers."""

    token: str = Field(min_length=1, max_length=4096, description="An HS256 JWT")


class BankSignIn(BaseModel):
    """Who is signed in now."""

    display_name: str
    vip: bool
    language: str = Field(description="The preferred language: en, zh or yue")
    home: str = Field(description="Where the customer's page is")


class BankTokenProblem(BaseModel):
    """Why the token signed nobody in."""

    error: str = Field(
        description="bank_identity_off, body_invalid, token_malformed, token_bad_signature, "
        "token_bad_algorithm, token_bad_claims, token_expired, token_not_yet_valid, "
        "token_too_long_lived, token_replayed, token_bad_account, token_account_disabled"
    )
    message: str


def _problem(status: int, code: str, message: str) -> web.Response:
    return respond(BankTokenProblem(error=code, message=message), status=status)


@operation(
    "Sign a customer in with the bank's signed identity token", tag="auth",
    description="The claims are in the README (Signed customer identity). Each token signs in "
    "once; the session is like a password sign-in's. Needs the X-CSRF-Token of the page.",
    body=BankTokenBody,
    responses={
        200: Response("Signed in (a new session cookie)", BankSignIn),
        400: Response("The body or the token is malformed", BankTokenProblem),
        401: Response("Bad signature, expired, too long-lived, replayed or bad claims", BankTokenProblem),
        403: Response("The customer's account here is disabled, or the CSRF token is wrong", BankTokenProblem),
        503: Response("Signed bank identity is off (no CC_BANK_TOKEN_SECRET)", BankTokenProblem),
    },
)
async def bank_token_sign_in(request: web.Request) -> web.Response:
    verifier = request.app[appkeys.BANK_TOKENS]
    if verifier is None:
        return _problem(
            503, "bank_identity_off",
            "signing in with the bank's identity is off on this server: "
            "set CC_BANK_TOKEN_SECRET to the secret shared with the bank",
        )
    try:
        body = BankTokenBody.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        return _problem(400, "body_invalid", f"{where}: {first.get('msg', 'invalid')}")
    db = request.app[appkeys.DB]
    try:
        claims = await verifier.verify(body.token)
        user = await bank_customer(db, claims)
    except BankTokenError as exc:
        await audit.record(
            db, actor="bank", action="signin.bank_token_refused", address=request.remote,
            detail={"code": exc.code},
        )
        return _problem(exc.status, exc.code, str(exc))
    identity = await sign_in(request, user)
    (await get_session(request))["lang"] = claims.lang  # the customer page opens in it
    await audit.record(
        db, actor=identity.ref, action="signin.bank_token", address=request.remote,
        detail={"sub": claims.sub, "vip": claims.vip},
    )
    return respond(
        BankSignIn(display_name=user.display_name, vip=user.vip, language=claims.lang, home="/")
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/api/identity/bank-token", bank_token_sign_in)
