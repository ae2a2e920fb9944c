"""Sign-in and sign-out pages."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, BeforeValidator, Field

from contact_center import appkeys, metrics
from contact_center.db.engine import transaction
from contact_center.identity import audit
from contact_center.identity.auth import (
    STAFF_HOME,
    csrf_token,
    current_identity,
    password_page,
    read_form,
    sign_in,
    sign_out,
)
from contact_center.identity.passwords import HashingBusy
from contact_center.identity.users import get_user_by_username
from contact_center.openapi import Response, operation

#: What a same-site target after sign-in may hold: a path, a query and a fragment in printable
#: ASCII. Browsers drop tabs and newlines inside URLs and read a backslash as a slash, so
#: ``/\t/evil.example`` or ``/\\evil.example`` would leave the site: those never pass.
_SAME_SITE = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?#]*")


def safe_next(value: str | None) -> str | None:
    """``value`` when it is a path on this site (no open redirect), else None."""
    if not value or not _SAME_SITE.fullmatch(value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


async def _render(
    request: web.Request,
    *,
    error: str | None = None,
    status: int = 200,
    username: str = "",
    next_path: str | None = None,
) -> web.Response:
    """The sign-in form. ``next_path``: where to go after it (the POSTed form's; a GET takes
    the query's), kept through a failed attempt."""
    if next_path is None:
        next_path = request.query.get("next")
    context = {
        "csrf_token": await csrf_token(request),
        "error": error,
        "username": username,
        "next": safe_next(next_path) or "",
        "identity": await current_identity(request),
    }
    response = aiohttp_jinja2.render_template("login.html", request, context)
    response.set_status(status)
    return response


def _text(limit: int, *, strip: bool = False) -> Any:
    """A form field as text, cut to ``limit`` characters (a file or a missing field: empty)."""

    def clean(value: object) -> str:
        text = value if isinstance(value, str) else ""
        return (text.strip() if strip else text)[:limit]

    return BeforeValidator(clean)


class LoginForm(BaseModel):
    """The sign-in form. Over-long fields are cut, not refused, as a browser's form would be."""

    username: Annotated[str, _text(64, strip=True), Field(max_length=64)] = ""
    password: Annotated[str, _text(256), Field(max_length=256)] = ""
    next: Annotated[str, _text(2048), Field(max_length=2048)] = Field(
        default="", description="A path on this site to land on after signing in."
    )
    csrf_token: Annotated[str, _text(128)] = ""


class LogoutForm(BaseModel):
    csrf_token: Annotated[str, _text(128)] = ""


HTML = "text/html"


@operation(
    "The sign-in page", tag="sign-in",
    responses={200: Response("The form, with its CSRF token", content_type=HTML)},
)
async def login_page(request: web.Request) -> web.Response:
    return await _render(request)


#: What a user name can be (``UserCreate``'s rule): anything else cannot exist, and is neither
#: looked up (PostgreSQL refuses a NUL) nor written to the audit log as given.
_USERNAME = re.compile(r"[A-Za-z0-9_.@-]{2,64}")


@operation(
    "Sign in", tag="sign-in", body=LoginForm, body_as="form",
    description="Starts a new session (a new cookie; the one it replaces ends) and redirects to "
    "`next` when it is a path on this site, else to the role's home page. Every attempt costs "
    "one password check, whether the account exists or not.",
    responses={
        303: "Signed in: the `Location` is where to go",
        400: Response("Username or password missing, or a form that cannot be read", content_type=HTML),
        401: Response("Wrong username or password", content_type=HTML),
        403: "The CSRF token is missing or wrong",
        429: Response("Too many failures for this account or from this network; see Retry-After", content_type=HTML),
        503: Response("Too many sign-ins being checked at once; see Retry-After", content_type=HTML),
    },
)
async def login(request: web.Request) -> web.Response:
    fields = await read_form(request)
    form = LoginForm.model_validate({key: fields.get(key) for key in set(fields.keys())})
    username, password = form.username, form.password
    possible = _USERNAME.fullmatch(username) is not None
    if not possible:
        username = ascii(username)[1:-1][:64]  # as shown back and audited: escaped
    address = request.remote or "unknown"
    throttle = request.app[appkeys.THROTTLE]
    db = request.app[appkeys.DB]
    if not username or not password:
        return await _render(
            request, error="Enter your username and password.", status=400, username=username,
            next_path=form.next,
        )
    blocked = await throttle.blocked(username, address)
    if blocked:
        await audit.record(
            db, actor=f"anon:{address}", action="login.throttled", target=username, address=address,
            detail={"per_address": blocked.per_address},
        )
        metrics.SIGNIN_FAILURES.labels("throttled").inc()
        whose = "from your network" if blocked.per_address else "for this account"
        response = await _render(
            request,
            error=f"Too many failed sign-ins {whose}. Try again in {blocked.seconds} seconds.",
            status=429,
            username=username,
            next_path=form.next,
        )
        response.headers["Retry-After"] = str(blocked.seconds)
        return response
    user = None
    if possible:
        async with transaction(db) as session:
            user = await get_user_by_username(session, username=username)
    try:
        # Always one argon2 check (a dummy hash without a user): the time taken must not tell
        # whether the account exists or is disabled.
        matched = await request.app[appkeys.PASSWORDS].verify(
            user.password_hash if user is not None else None, password
        )
    except HashingBusy:
        metrics.SIGNIN_FAILURES.labels("busy").inc()
        response = await _render(
            request, error="We are very busy: try again in a moment.", status=503,
            username=username, next_path=form.next,
        )
        response.headers["Retry-After"] = "2"
        return response
    if not matched or user is None or user.disabled:
        metrics.SIGNIN_FAILURES.labels("wrong").inc()
        await throttle.failed(username, address)
        await audit.record(
            db, actor=f"anon:{address}", action="login.failed", target=username, address=address
        )
        return await _render(
            request, error="Wrong username or password.", status=401, username=username,
            next_path=form.next,
        )
    await throttle.succeeded(username, address)
    identity = await sign_in(request, user)
    target = safe_next(form.next)
    if identity.must_change_password:
        # A password an administrator set: the user's own comes first, then where they were going.
        await audit.record(
            db, actor=identity.ref, action="login", address=address,
            detail={"temporary_password": True},
        )
        raise web.HTTPSeeOther(password_page(target))
    await audit.record(db, actor=identity.ref, action="login", address=address)
    raise web.HTTPSeeOther(target or STAFF_HOME[identity.role])


@operation(
    "Sign out", tag="sign-in", body=LogoutForm, body_as="form", security=("session",),
    description="Ends the session in Redis as well as the cookie: a copy of it no longer works, "
    "and the WebSockets opened with it close (code 4401).",
    responses={303: "Signed out: to /login", 403: "The CSRF token is missing or wrong"},
)
async def logout(request: web.Request) -> web.Response:
    identity = await sign_out(request)
    if identity is not None:
        await audit.record(
            request.app[appkeys.DB], actor=identity.ref, action="logout", address=request.remote
        )
    raise web.HTTPSeeOther("/login")


def setup(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
