"""The change-password page: a signed-in user picks a new password.

Required after a sign-in with a password an administrator set (a new account from the admin
page, a reset): until then ``require_role`` sends every page here and answers every API with
403. Open to any signed-in user for a change of their own. The current password is asked
again (a borrowed session alone cannot take the account) and a wrong one counts towards the
sign-in throttle. A change ends every session of the account and starts a fresh one here.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, BeforeValidator, Field

from contact_center import appkeys, metrics
from contact_center.db.engine import transaction
from contact_center.identity import audit
from contact_center.identity.auth import (
    PASSWORD_PAGE,
    STAFF_HOME,
    Identity,
    csrf_token,
    current_identity,
    read_form,
    sign_in,
)
from contact_center.identity.passwords import HashingBusy
from contact_center.identity.users import get_user, set_password
from contact_center.openapi import Response, operation
from contact_center.views.auth import safe_next

MIN_LENGTH = 8
MAX_LENGTH = 256  # ``identity.users.Password``'s rule
HTML = "text/html"


def _field(value: object) -> str:
    """A form field as text (a file or a missing field: empty); long ones are kept, to be
    refused by name rather than cut."""
    return value[:4096] if isinstance(value, str) else ""


Text = Annotated[str, BeforeValidator(_field)]


class PasswordForm(BaseModel):
    """The change-password form."""

    current_password: Text = ""
    new_password: Text = Field(default="", description=f"{MIN_LENGTH} to {MAX_LENGTH} characters")
    repeat_password: Text = Field(default="", description="The new password again")
    next: Text = Field(default="", description="A path on this site to land on afterwards.")
    csrf_token: Text = ""


async def _render(
    request: web.Request,
    identity: Identity,
    *,
    next_path: str | None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    context: dict[str, Any] = {
        "identity": identity,
        "csrf_token": await csrf_token(request),
        "error": error,
        "next": safe_next(next_path) or "",
        "required": identity.must_change_password,
        "min_length": MIN_LENGTH,
    }
    response = aiohttp_jinja2.render_template("password.html", request, context)
    response.set_status(status)
    return response


async def _signed_in(request: web.Request) -> Identity:
    identity = await current_identity(request)
    if identity is None or identity.guest:
        raise web.HTTPFound(f"/login?next={quote(PASSWORD_PAGE, safe='/')}")
    return identity


def problem_with(form: PasswordForm) -> str | None:
    """What is wrong with the new password as typed, before any password check; None if fine."""
    if not form.current_password or not form.new_password:
        return "Enter your current password and the new one."
    if len(form.new_password) < MIN_LENGTH:
        return f"The new password needs {MIN_LENGTH} characters or more."
    if len(form.new_password) > MAX_LENGTH:
        return f"The new password may have at most {MAX_LENGTH} characters."
    if form.new_password != form.repeat_password:
        return "The two new passwords are not the same."
    if form.new_password == form.current_password:
        return "Choose a password other than the current one."
    return None


@operation(
    "The change-password page", tag="sign-in", security=("session",),
    description="Where a user signed in with a temporary password (set by an administrator) "
    "must go first; any signed-in user may change their password here.",
    responses={
        200: Response("The form, with its CSRF token", content_type=HTML),
        302: "Not signed in: to /login",
    },
)
async def password_form(request: web.Request) -> web.Response:
    identity = await _signed_in(request)
    return await _render(request, identity, next_path=request.query.get("next"))


@operation(
    "Change one's password", tag="sign-in", body=PasswordForm, body_as="form",
    security=("session",),
    description="Checks the current password (a failure counts towards the sign-in throttle), "
    "sets the new one, clears the temporary mark, ends every session of the account and starts "
    "a new one; then redirects to `next` when it is a path on this site, else to the role's "
    "home page. Audited (`password.change`).",
    responses={
        303: "Changed: the `Location` is where to go",
        302: "Not signed in: to /login",
        400: Response("A field missing, a new password too short or long, not repeated "
                      "the same, or the same as the current one", content_type=HTML),
        401: Response("The current password is wrong", content_type=HTML),
        403: "The CSRF token is missing or wrong",
        429: Response("Too many failures for this account; see Retry-After", content_type=HTML),
        503: Response("Too many password checks at once; see Retry-After", content_type=HTML),
    },
)
async def change_password(request: web.Request) -> web.Response:
    identity = await _signed_in(request)
    fields = await read_form(request)
    form = PasswordForm.model_validate({key: fields.get(key) for key in set(fields.keys())})
    problem = problem_with(form)
    if problem:
        return await _render(request, identity, next_path=form.next, error=problem, status=400)
    app = request.app
    db = app[appkeys.DB]
    assert identity.user_id is not None
    async with transaction(db) as session:
        user = await get_user(session, user_id=identity.user_id)
    if user is None or user.disabled:
        raise web.HTTPFound("/login")
    address = request.remote or "unknown"
    throttle = app[appkeys.THROTTLE]
    blocked = await throttle.blocked(user.username, address)
    if blocked:
        response = await _render(
            request, identity, next_path=form.next, status=429,
            error=f"Too many wrong passwords. Try again in {blocked.seconds} seconds.",
        )
        response.headers["Retry-After"] = str(blocked.seconds)
        return response
    try:
        matched = await app[appkeys.PASSWORDS].verify(user.password_hash, form.current_password)
    except HashingBusy:
        response = await _render(
            request, identity, next_path=form.next, status=503,
            error="We are very busy: try again in a moment.",
        )
        response.headers["Retry-After"] = "2"
        return response
    if not matched:
        metrics.SIGNIN_FAILURES.labels("wrong").inc()
        await throttle.failed(user.username, address)
        await audit.record(
            db, actor=identity.ref, action="password.change_failed", target=identity.ref,
            address=address,
        )
        return await _render(
            request, identity, next_path=form.next, status=401,
            error="Your current password is wrong.",
        )
    await throttle.succeeded(user.username, address)
    async with transaction(db) as session:
        user = await set_password(session, user_id=identity.user_id, password=form.new_password)
    await audit.record(
        db, actor=identity.ref, action="password.change", target=identity.ref, address=address,
        detail={"was_temporary": identity.must_change_password},
    )
    # Every session of the old password ends (another browser too); this one starts afresh.
    await app[appkeys.SESSIONS].revoke_user(identity.user_id)
    fresh = await sign_in(request, user)
    raise web.HTTPSeeOther(safe_next(form.next) or STAFF_HOME[fresh.role])


def setup(app: web.Application) -> None:
    app.router.add_get(PASSWORD_PAGE, password_form)
    app.router.add_post(PASSWORD_PAGE, change_password)
