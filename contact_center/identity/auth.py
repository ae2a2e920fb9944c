"""Who is asking: cookie identities, role guards, CSRF tokens and sign-in throttling."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp_session import get_session, new_session
from multidict import MultiDictProxy

from contact_center import appkeys, redis_keys
from contact_center.db.engine import transaction
from contact_center.db.models import Role, User
from contact_center.identity.users import get_user

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STAFF_HOME = {
    Role.CUSTOMER: "/",
    Role.ADVISOR: "/advisor",
    Role.SUPERVISOR: "/supervisor",
    Role.COMPLIANCE: "/compliance",
    Role.ADMIN: "/admin",
}

#: Where a user whose password is temporary (set by an administrator) chooses their own.
PASSWORD_PAGE = "/password"
PASSWORD_CHANGE_REQUIRED = (
    "Your password was set by an administrator and is temporary: choose your own at "
    f"{PASSWORD_PAGE} first; until then nothing else works."
)


@dataclass(frozen=True, slots=True)
class Identity:
    """The person behind a request: a signed-in user or a guest customer."""

    ref: str  # "user:<id>" or "guest:<hex>"
    role: Role
    display_name: str
    user_id: int | None = None
    vip: bool = False
    session_id: str | None = None  # signed-in users: their session in Redis (identity.sessions)
    #: Signed in with a temporary password: only the change-password page may be used.
    must_change_password: bool = False

    @property
    def guest(self) -> bool:
        return self.user_id is None


def identity_from_session(session: Mapping[str, Any]) -> Identity | None:
    """Who the cookie (or a WebSocket token's copy of it) says this is, unchecked."""
    ref = session.get("ref")
    role = session.get("role")
    if not ref or not isinstance(role, str) or role not in set(Role):
        return None
    uid, sid = session.get("uid"), session.get("sid")
    if uid is not None and not isinstance(sid, str):
        return None  # a sign-in without a server-side session cannot be ended: not trusted
    return Identity(
        ref=ref,
        role=Role(role),
        display_name=session.get("name", ""),
        user_id=uid,
        vip=bool(session.get("vip")),
        session_id=sid,
        must_change_password=bool(session.get("pwtmp")),
    )


async def live_identity(app: web.Application, session: Mapping[str, Any]) -> Identity | None:
    """The identity of ``session`` if it still stands: a guest, or a user whose session is live
    in Redis (which counts as activity) and whose account has not changed since."""
    identity = identity_from_session(session)
    if identity is None or identity.guest:
        return identity
    assert identity.session_id is not None and identity.user_id is not None
    store = app[appkeys.SESSIONS]
    record = await store.touch(identity.session_id, identity.role)
    if record is None or record.get("uid") != str(identity.user_id):
        return None
    if store.due_for_recheck(record):
        async with transaction(app[appkeys.DB]) as db:
            user = await get_user(db, user_id=identity.user_id)
        if not await store.still_valid(identity.session_id, record, user):
            return None
    return identity


async def current_identity(request: web.Request) -> Identity | None:
    """The checked identity of this request (worked out once per request)."""
    if appkeys.REQUEST_IDENTITY in request:
        return request[appkeys.REQUEST_IDENTITY]
    session = await get_session(request)
    identity = await live_identity(request.app, session)
    if identity is None and session.get("uid") is not None:
        session.invalidate()  # ended, expired or revoked: the cookie goes as well
    request[appkeys.REQUEST_IDENTITY] = identity
    return identity


async def sign_in(request: web.Request, user: User) -> Identity:
    """Start a fresh session for ``user`` (a new cookie, so a planted one is useless); the
    session it replaces, if any, is ended."""
    previous = (await get_session(request)).get("sid")
    store = request.app[appkeys.SESSIONS]
    if isinstance(previous, str):
        await store.revoke(previous)
    session = await new_session(request)
    session.update(
        {
            "ref": f"user:{user.id}",
            "uid": user.id,
            "sid": await store.create(user),
            "role": user.role.value if isinstance(user.role, Role) else user.role,
            "name": user.display_name,
            "vip": user.vip,
            "csrf": secrets.token_urlsafe(32),
            # In the encrypted cookie: it cannot be cleared but by a new sign-in, which the
            # password change does (the sessions of the old password all end with it).
            "pwtmp": user.must_change_password,
        }
    )
    identity = identity_from_session(session)
    assert identity is not None
    request[appkeys.REQUEST_IDENTITY] = identity
    return identity


def password_page(next_path: str | None) -> str:
    """The change-password page, carrying where to go after it (a same-site path, checked by
    the caller)."""
    return f"{PASSWORD_PAGE}?next={quote(next_path, safe='/')}" if next_path else PASSWORD_PAGE


async def sign_out(request: web.Request) -> Identity | None:
    """End this request's session, in Redis and in the cookie; returns who it was."""
    identity = await current_identity(request)
    session = await get_session(request)
    sid = session.get("sid")
    if isinstance(sid, str):
        await request.app[appkeys.SESSIONS].revoke(sid)
    session.invalidate()
    request[appkeys.REQUEST_IDENTITY] = None
    return identity


async def guest_identity(request: web.Request) -> Identity:
    """The current identity, or a new guest customer with its own cookie."""
    identity = await current_identity(request)
    if identity is not None:
        return identity
    session = await get_session(request)
    session.update(
        {
            "ref": f"guest:{uuid.uuid4().hex}",
            "role": Role.CUSTOMER.value,
            "name": "Guest",
            "csrf": secrets.token_urlsafe(32),
        }
    )
    identity = identity_from_session(session)
    assert identity is not None
    request[appkeys.REQUEST_IDENTITY] = identity
    return identity


async def csrf_token(request: web.Request) -> str:
    session = await get_session(request)
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The form of a POST; a body that cannot be read as one is the client's error (400).

    aiohttp raises plain exceptions (ValueError, LookupError, AssertionError) for multipart
    without a boundary, broken multipart, an unknown charset or bytes that are not in the
    charset: unanswered, each would be a 500 on every POST, as the CSRF check reads the form.
    """
    try:
        return await request.post()
    except web.HTTPException:
        raise  # 413 and the like: aiohttp's own answer
    except (ValueError, LookupError, AssertionError, EOFError) as exc:
        raise web.HTTPBadRequest(text=f"The form could not be read: {type(exc).__name__}.") from None


async def check_csrf(request: web.Request) -> None:
    """Refuse a state-changing request whose form field or header does not carry the token."""
    session = await get_session(request)
    expected = session.get("csrf")
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        given = (await read_form(request)).get("csrf_token")
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise web.HTTPForbidden(text="CSRF token missing or wrong: reload the page and try again.")


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in {"POST", "PUT", "PATCH", "DELETE"}:
        await check_csrf(request)
    return await handler(request)


def require_role(*roles: Role, allow_guest: bool = False) -> Callable[[Handler], Handler]:
    """Guard a handler: sign-in needed (pages redirect, APIs get 401), then one of ``roles``."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            if allow_guest and Role.CUSTOMER in roles:
                identity: Identity | None = await guest_identity(request)
            else:
                identity = await current_identity(request)
            if identity is None:
                if request.method == "GET" and not request.path.startswith("/api/"):
                    raise web.HTTPFound(f"/login?next={quote(request.raw_path, safe='/')}")
                raise web.HTTPUnauthorized(text="Sign in first.")
            if identity.must_change_password:
                if request.method == "GET" and not request.path.startswith("/api/"):
                    raise web.HTTPFound(password_page(request.raw_path))
                raise web.HTTPForbidden(
                    text=PASSWORD_CHANGE_REQUIRED, headers={"X-Password-Change": PASSWORD_PAGE}
                )
            if identity.role not in roles:
                raise web.HTTPForbidden(
                    text=f"This page is for {', '.join(r.value for r in roles)} accounts; "
                    f"you are signed in as {identity.role.value}."
                )
            request[appkeys.IDENTITY] = identity
            return await handler(request)

        guarded.required_roles = roles  # type: ignore[attr-defined]
        return guarded

    return decorate


def address_key(address: str) -> str:
    """The unit a limit per address counts: the address, or its /64 for IPv6 (one subscriber
    commonly holds a whole /64, so single IPv6 addresses cost an attacker nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class GuestQuota:
    """How many conversations guests may start from one address in a window (fixed, in Redis).

    A guest needs no account, so without it one address could queue any number of contacts
    (a new cookie each). Signed-in customers are not counted, nor is loopback: that is this
    machine (the simulator, tests, or a local proxy; set ``CC_TRUSTED_PROXIES`` for it).
    """

    def __init__(self, redis: aioredis.Redis, *, limit: int, window_s: int) -> None:
        self._redis = redis
        self.limit = limit
        self.window_s = window_s

    @staticmethod
    def _counted(address: str | None) -> bool:
        try:
            return not ipaddress.ip_address(address or "").is_loopback
        except ValueError:
            return True

    async def take(self, address: str | None) -> int:
        """Count one start; 0 when allowed, else the seconds until the window ends."""
        if not self._counted(address):
            return 0
        key = redis_keys.guest_contacts(address_key(address or "unknown"))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.window_s, nx=True)
            pipe.ttl(key)
            count, _, ttl = await pipe.execute()
        if int(count) <= self.limit:
            return 0
        await self._redis.decr(key)  # a refused start takes no place
        return max(1, int(ttl))

    async def give_back(self, address: str | None) -> None:
        """A start that was counted but did not happen (refused for another reason)."""
        if self._counted(address):
            await self._redis.decr(redis_keys.guest_contacts(address_key(address or "unknown")))


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why a sign-in may not be tried now, and for how long."""

    seconds: int
    per_address: bool


class LoginThrottle:
    """Counts failed sign-ins in Redis, shared by every instance: per account and address
    (guessing one account), and per address across accounts (spreading the guesses)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_failures: int,
        window_s: int,
        address_max_failures: int = 20,
    ) -> None:
        self._redis = redis
        self.max_failures = max_failures
        self.window_s = window_s
        self.address_max_failures = address_max_failures

    def _keys(self, username: str, address: str) -> tuple[str, str]:
        unit = address_key(address)
        return redis_keys.login_failures(username, unit), redis_keys.login_failures_of_address(unit)

    async def blocked(self, username: str, address: str) -> Blocked | None:
        """Whether (and how long) an attempt must wait; None when it is allowed now."""
        account, anywhere = self._keys(username, address)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(account)
            pipe.ttl(account)
            pipe.get(anywhere)
            pipe.ttl(anywhere)
            by_account, account_ttl, by_address, address_ttl = await pipe.execute()
        if int(by_address or 0) >= self.address_max_failures:
            return Blocked(max(1, int(address_ttl)), per_address=True)
        if int(by_account or 0) >= self.max_failures:
            return Blocked(max(1, int(account_ttl)), per_address=False)
        return None

    async def blocked_for(self, username: str, address: str) -> int:
        """Seconds until another attempt is allowed; 0 when it is allowed now."""
        blocked = await self.blocked(username, address)
        return blocked.seconds if blocked else 0

    async def failed(self, username: str, address: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in self._keys(username, address):
                pipe.incr(key)
                pipe.expire(key, self.window_s, nx=True)
            await pipe.execute()

    async def succeeded(self, username: str, address: str) -> None:
        # Only the account's count: a success must not wash out guesses at other accounts.
        await self._redis.delete(self._keys(username, address)[0])
