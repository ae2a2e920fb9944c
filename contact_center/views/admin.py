"""Account administration: a JSON API behind the ``/admin`` page.

Every change leaves one audit row (``user.create``, ``user.update``, ``user.password_reset``)
naming the fields changed. A password the admin sets (a new account, a reset) is temporary: the
user must choose their own at the next sign-in (``views.password``). Every change reaches the
router at once: an advisor's new languages, skills or capacity are upserted
(``RouterStore.upsert_agent`` matches the agent again, so a waiting contact that needs the new
skill is offered without a restart); a disabled advisor goes offline in the router, their open
contacts end and their sockets on this instance close.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from contact_center import appkeys
from contact_center.contacts import store
from contact_center.contacts.core import agent_id_of
from contact_center.contacts.states import ContactState, InvalidTransition
from contact_center.db.engine import transaction
from contact_center.db.models import Role, User
from contact_center.identity import audit
from contact_center.identity.auth import require_role
from contact_center.identity.users import (
    UserCreate,
    UserPublic,
    UserUpdate,
    create_user,
    get_user,
    get_user_by_username,
    list_users,
    reset_password,
    update_user,
)
from contact_center.openapi import operation
from routing.errors import RoutingError, UnknownAgentError
from routing.models import AgentProfile, AgentState, Channel

log = logging.getLogger(__name__)

#: Close code of an advisor's socket when their account is disabled (4000-4999: ours).
CLOSE_DISABLED = 4403
ROUTED_FIELDS = frozenset({"languages", "skills", "capacity", "role", "disabled"})


M = TypeVar("M", bound=BaseModel)


async def _body(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise web.HTTPBadRequest(text=f"{where}: {message}") from None


def _user_id(request: web.Request) -> int:
    try:
        return int(request.match_info["user_id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such user") from None


def _public(user: User) -> dict[str, Any]:
    return UserPublic.of(user).model_dump(mode="json")


# ------------------------------------------------------------------ the router side of a change


async def sync_agent(app: web.Application, user: User) -> str | None:
    """Bring the router's view of ``user`` to the account; returns the agent's state, if any."""
    assert user.id is not None
    router = app[appkeys.ROUTER]
    agent_id = agent_id_of(user.id)
    if user.role != Role.ADVISOR or user.disabled:
        with contextlib.suppress(UnknownAgentError):
            return (await router.set_agent_state(agent_id, AgentState.OFFLINE)).value
        return None
    profile = AgentProfile(
        id=agent_id,
        languages=frozenset(user.languages),
        skills=user.skills,
        capacity={Channel(k): v for k, v in user.capacity.items()},
    )
    return (await router.upsert_agent(profile)).value


async def end_advisor_work(app: web.Application, user: User, *, actor: str) -> dict[str, Any]:
    """A disabled advisor: open contacts end (the customer is told), sockets here close."""
    assert user.id is not None
    svc = app[appkeys.CONTACTS]
    async with transaction(app[appkeys.DB]) as session:
        open_contacts = await store.open_contacts_of_advisor(session, advisor_id=user.id)
    ended: list[str] = []
    for contact in open_contacts:
        try:
            if contact.state == ContactState.CONNECTED:
                contact = await svc.end_contact(contact, actor=actor, reason="advisor_disabled")
            if contact.state == ContactState.WRAP_UP:
                await svc.finish_wrapup(contact.id, actor=actor)
            ended.append(contact.id)
        except (InvalidTransition, RoutingError) as exc:
            log.info("disabling %s: contact %s moved on: %s", user.username, contact.id, exc)
    ref = f"user:{user.id}"
    connections = app[appkeys.CONNECTIONS].copy()
    sockets = [c for c in connections if c.identity and c.identity.ref == ref]
    for conn in sockets:
        with contextlib.suppress(Exception):
            await conn.close(CLOSE_DISABLED, "account disabled")
    # Every signed-in session of the account ends too (any instance: they live in Redis).
    sessions_ended = await app[appkeys.SESSIONS].revoke_user(user.id)
    return {"contacts_ended": ended, "sockets_closed": len(sockets), "sessions_ended": sessions_ended}


# ------------------------------------------------------------------ handlers


@operation(
    "List accounts (staff; ?all=1 for customers too)",
    tag="admin",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.ADMIN)
async def users_list(request: web.Request) -> web.Response:
    async with transaction(request.app[appkeys.DB]) as session:
        users = await list_users(session, include_customers=request.query.get("all") == "1")
    return web.json_response({"users": [_public(u) for u in users]})


@operation(
    "Create an account (audited); its password is temporary until the user changes it",
    tag="admin",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.ADMIN)
async def users_create(request: web.Request) -> web.Response:
    data = await _body(request, UserCreate)
    identity = request[appkeys.IDENTITY]
    async with transaction(request.app[appkeys.DB]) as session:
        if await get_user_by_username(session, username=data.username):
            raise web.HTTPConflict(text=f"a user named {data.username!r} already exists")
        # The admin chose this password: the user must choose their own at the first sign-in.
        user = await create_user(session, data=data, temporary=True)
    await audit.record(
        request.app[appkeys.DB],
        actor=identity.ref,
        action="user.create",
        target=f"user:{user.id}",
        address=request.remote,
        detail={
            "username": user.username,
            **data.model_dump(mode="json", exclude={"password"}),
            "temporary_password": True,
        },
    )
    router_state = await sync_agent(request.app, user)
    return web.json_response({"user": _public(user), "router_state": router_state}, status=201)


@operation(
    "Change an account: only the fields given (audited, pushed to the router)",
    tag="admin",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.ADMIN)
async def users_update(request: web.Request) -> web.Response:
    data = await _body(request, UserUpdate)
    user_id = _user_id(request)
    identity = request[appkeys.IDENTITY]
    if user_id == identity.user_id and (data.disabled or data.role not in (None, Role.ADMIN)):
        raise web.HTTPConflict(text="you cannot disable yourself or give up your own admin role")
    db = request.app[appkeys.DB]
    try:
        async with transaction(db) as session:
            user, changes = await update_user(session, user_id=user_id, data=data)
    except LookupError:
        raise web.HTTPNotFound(text="no such user") from None
    result: dict[str, Any] = {"user": _public(user), "changed": sorted(changes)}
    if not changes:
        return web.json_response(result)
    await audit.record(
        db,
        actor=identity.ref,
        action="user.update",
        target=f"user:{user.id}",
        address=request.remote,
        detail={"username": user.username, "changes": changes},
    )
    if ROUTED_FIELDS & changes.keys():
        result["router_state"] = await sync_agent(request.app, user)
    if changes.get("disabled", {}).get("to") is True:
        result.update(await end_advisor_work(request.app, user, actor=identity.ref))
    return web.json_response(result)


@operation(
    "A one-time temporary password, to be changed at next sign-in (audited; ends the "
    "account's sessions)",
    tag="admin",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.ADMIN)
async def users_reset_password(request: web.Request) -> web.Response:
    """A new temporary password, shown once to the administrator who hands it over."""
    user_id = _user_id(request)
    identity = request[appkeys.IDENTITY]
    db = request.app[appkeys.DB]
    try:
        async with transaction(db) as session:
            user, password = await reset_password(session, user_id=user_id)
    except LookupError:
        raise web.HTTPNotFound(text="no such user") from None
    await audit.record(
        db,
        actor=identity.ref,
        action="user.password_reset",
        target=f"user:{user.id}",
        address=request.remote,
        detail={"username": user.username},
    )
    # A changed password ends every session signed in with the old one.
    assert user.id is not None
    await request.app[appkeys.SESSIONS].revoke_user(user.id)
    return web.json_response({"user": _public(user), "temporary_password": password})


@operation(
    "One account",
    tag="admin",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.ADMIN)
async def users_get(request: web.Request) -> web.Response:
    async with transaction(request.app[appkeys.DB]) as session:
        user = await get_user(session, user_id=_user_id(request))
    if user is None:
        raise web.HTTPNotFound(text="no such user")
    return web.json_response({"user": _public(user)})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/admin/users", users_list)
    app.router.add_post("/api/admin/users", users_create)
    app.router.add_get("/api/admin/users/{user_id}", users_get)
    app.router.add_patch("/api/admin/users/{user_id}", users_update)
    app.router.add_post("/api/admin/users/{user_id}/password-reset", users_reset_password)
