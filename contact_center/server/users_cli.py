"""``contact-center users list|update|disable``: the admin page's account changes from a shell.

Each change leaves one audit row with actor ``cli``, as the admin API does. With ``CC_REDIS_URL``
set, the router gets the change at once (a new skill is routable, a disabled advisor goes
offline); the embedded Valkey is private to the server, so without it the advisor's next
connection carries the change. Ending a disabled advisor's open contacts needs the server:
use the admin page for that (``PATCH /api/admin/users/{id}``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from pydantic import ValidationError

from contact_center.config import Settings
from contact_center.db.models import AuditLog, Role, User

EXIT_USAGE = 2


def _fail(message: str, code: int = 1) -> int:
    import sys

    print(f"error: {message}", file=sys.stderr)
    return code


def _levels(spec: str | None, what: str) -> dict[str, int] | None:
    from contact_center.identity.users import parse_levels

    return None if spec is None else parse_levels(spec, what=what)


def _row(user: User) -> str:
    skills = ",".join(f"{k}:{v}" for k, v in sorted(user.skills.items())) or "-"
    capacity = ",".join(f"{k}:{v}" for k, v in user.capacity.items())
    state = "disabled" if user.disabled else "new-pw" if user.must_change_password else "active"
    return (
        f"{user.id:>4}  {user.username:<20} {user.role:<10} {state:<8} "
        f"{','.join(user.languages):<10} {skills:<24} {capacity}"
    )


async def _to_router(settings: Settings, user: User) -> str | None:
    """Push the account to the router through the configured Redis; None when there is none."""
    if settings.embedded_redis:
        return None
    from contact_center import redis_client
    from contact_center.contacts.core import agent_id_of
    from routing.errors import UnknownAgentError
    from routing.models import AgentProfile, AgentState, Channel
    from routing.policy import load_policy
    from routing.store import RouterStore

    assert user.id is not None
    client = redis_client.connect(settings)
    try:
        router = RouterStore(client, load_policy(settings.routing_policy))
        if user.role != Role.ADVISOR or user.disabled:
            try:
                return (await router.set_agent_state(agent_id_of(user.id), AgentState.OFFLINE)).value
            except UnknownAgentError:
                return "not registered"
        profile = AgentProfile(
            id=agent_id_of(user.id),
            languages=frozenset(user.languages),
            skills=user.skills,
            capacity={Channel(k): v for k, v in user.capacity.items()},
        )
        return (await router.upsert_agent(profile)).value
    finally:
        await client.aclose()


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from contact_center.identity.users import UserPublic, list_users
    from contact_center.server.cli import _with_session

    async def work(session):
        role = Role(args.role) if args.role else None
        return await list_users(session, role=role, include_customers=args.all)

    users = asyncio.run(_with_session(settings, work))
    if args.json:
        print(json.dumps([UserPublic.of(u).model_dump(mode="json") for u in users], indent=2))
        return 0
    print(f"{'id':>4}  {'username':<20} {'role':<10} {'state':<8} {'languages':<10} "
          f"{'skills':<24} capacity")
    for user in users:
        print(_row(user))
    return 0


def _update_from(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if args.role:
        fields["role"] = args.role
    if args.display_name:
        fields["display_name"] = args.display_name
    if args.languages is not None:
        fields["languages"] = [x.strip() for x in args.languages.split(",") if x.strip()]
    if args.skills is not None:
        fields["skills"] = _levels(args.skills, "skill")
    if args.capacity is not None:
        fields["capacity"] = _levels(args.capacity, "capacity")
    if args.vip is not None:
        fields["vip"] = args.vip
    if args.disabled is not None:
        fields["disabled"] = args.disabled
    return fields


def cmd_update(settings: Settings, args: argparse.Namespace) -> int:
    from contact_center.identity.users import UserUpdate

    try:
        data = UserUpdate(**_update_from(args))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        return _fail(f"--{name.replace('_', '-')}: {first['msg'].removeprefix('Value error, ')}",
                     EXIT_USAGE)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    return _apply(settings, args.username, data, action="user.update")


def cmd_disable(settings: Settings, args: argparse.Namespace) -> int:
    from contact_center.identity.users import UserUpdate

    return _apply(settings, args.username, UserUpdate(disabled=True), action="user.update")


def _apply(settings: Settings, username: str, data: Any, *, action: str) -> int:
    from contact_center.db.engine import DatabaseNotMigrated
    from contact_center.identity.users import get_user_by_username, update_user
    from contact_center.server.cli import _with_session

    async def work(session):
        user = await get_user_by_username(session, username=username)
        if user is None or user.id is None:
            return None, {}
        user, changes = await update_user(session, user_id=user.id, data=data)
        if changes:
            session.add(AuditLog(actor="cli", action=action, target=f"user:{user.id}",
                                 detail={"username": user.username, "changes": changes}))
        return user, changes

    try:
        user, changes = asyncio.run(_with_session(settings, work))
    except DatabaseNotMigrated as exc:
        return _fail(str(exc))
    if user is None:
        return _fail(f"no user named {username!r}")
    if not changes:
        print(f"{username}: nothing to change")
        return 0
    print(f"{username}: changed {', '.join(sorted(changes))}")
    if changes.get("disabled", {}).get("to") is True:
        from contact_center.server.cli import _end_sessions

        ended = asyncio.run(_end_sessions(settings, user.id))
        print("sessions: no CC_REDIS_URL; none ended" if ended is None else f"sessions ended: {ended}")
    state = asyncio.run(_to_router(settings, user))
    if state is None:
        print("router: no CC_REDIS_URL; the advisor's next connection carries the change")
    else:
        print(f"router: {state}")
    return 0


def add_parsers(usub: Any) -> None:
    """Add ``list``, ``update`` and ``disable`` to the ``users`` subcommands."""
    roles = [r.value for r in Role]
    listing = usub.add_parser("list", help="list accounts (staff; --all for customers too)")
    listing.add_argument("--role", choices=roles)
    listing.add_argument("--all", action="store_true", help="customers too")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    update = usub.add_parser("update", help="change an account; what is not given stays")
    update.add_argument("username")
    update.add_argument("--role", choices=roles)
    update.add_argument("--display-name")
    update.add_argument("--languages", help="comma-separated among en, zh, yue (replaces)")
    update.add_argument("--skills", help="e.g. cards:4,fx:3 (replaces the skills)")
    update.add_argument("--capacity", help="e.g. text:3,voice:1,video:1")
    vip = update.add_mutually_exclusive_group()
    vip.add_argument("--vip", dest="vip", action="store_true", default=None)
    vip.add_argument("--no-vip", dest="vip", action="store_false")
    state = update.add_mutually_exclusive_group()
    state.add_argument("--disable", dest="disabled", action="store_true", default=None)
    state.add_argument("--enable", dest="disabled", action="store_false")
    update.set_defaults(func=cmd_update)

    disable = usub.add_parser("disable", help="disable an account (and take it out of routing)")
    disable.add_argument("username")
    disable.set_defaults(func=cmd_disable)
