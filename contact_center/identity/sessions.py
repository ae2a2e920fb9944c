"""Signed-in sessions held in Redis: the cookie names one, and only a live one counts.

The encrypted cookie alone cannot be taken back: a copy of it would work for its whole life.
So each sign-in also writes a record here, keyed by a random session id that the cookie
carries; sign-out deletes it, and disabling an account or changing its password deletes every
record of that user. Staff records expire after ``staff_idle_s`` without a request (each
request pushes the deadline back), every record after ``max_age_s``. Every ``recheck_s`` the
account itself is looked at again, so that a change made only in the database (a CLI with no
Redis at hand) ends the sessions too.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from contact_center import redis_keys
from contact_center.db.models import Role, User

#: How long a session lives at most, idle or not (the cookie's max-age too).
SESSION_MAX_AGE_S = 12 * 3600
#: How often the account behind a live session is read again from the database.
RECHECK_S = 60.0
STAFF = frozenset({Role.ADVISOR, Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN})

# touch: a session's fields, its deadline pushed back; nothing when it is gone or too old.
# KEYS[1] the session hash. ARGV[1] now (s), ARGV[2] idle timeout (s; 0: none), ARGV[3] max age.
_TOUCH = """
local created = tonumber(redis.call('HGET', KEYS[1], 'created'))
if not created then return false end
local left = created + tonumber(ARGV[3]) - tonumber(ARGV[1])
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return false
end
local idle = tonumber(ARGV[2])
if idle > 0 and idle < left then left = idle end
redis.call('EXPIRE', KEYS[1], math.ceil(left))
return redis.call('HGETALL', KEYS[1])
"""


def password_mark(password_hash: str) -> str:
    """A short fingerprint of the password hash: it changes when the password does."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _pairs(reply: Any) -> dict[str, str]:
    if isinstance(reply, Mapping):
        return {str(k): str(v) for k, v in reply.items()}
    items = [str(x) for x in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


class SessionStore:
    """Create, check, end: the server-side half of every signed-in session."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        staff_idle_s: int,
        max_age_s: int = SESSION_MAX_AGE_S,
        recheck_s: float = RECHECK_S,
    ) -> None:
        self.redis = redis
        self.staff_idle_s = staff_idle_s
        self.max_age_s = max_age_s
        self.recheck_s = recheck_s
        self._touch = redis.register_script(_TOUCH)

    def idle_s(self, role: Role) -> int:
        """Seconds without a request after which a session of ``role`` ends (0: never)."""
        return self.staff_idle_s if role in STAFF else 0

    async def create(self, user: User) -> str:
        """A new session of ``user``; returns its id (for the cookie)."""
        assert user.id is not None
        sid = secrets.token_urlsafe(24)
        now = time.time()
        role = Role(user.role)
        ttl = min(self.idle_s(role) or self.max_age_s, self.max_age_s)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                redis_keys.session(sid),
                mapping={
                    "uid": user.id,
                    "role": role.value,
                    "pw": password_mark(user.password_hash),
                    "created": now,
                    "checked": now,
                },
            )
            pipe.expire(redis_keys.session(sid), ttl)
            pipe.sadd(redis_keys.user_sessions(user.id), sid)
            pipe.expire(redis_keys.user_sessions(user.id), self.max_age_s)
            await pipe.execute()
        return sid

    async def touch(self, sid: str, role: Role) -> dict[str, str] | None:
        """The live session ``sid`` (its idle deadline pushed back), or None."""
        reply = await self._touch(
            keys=[redis_keys.session(sid)],
            args=[repr(time.time()), self.idle_s(role), self.max_age_s],
        )
        return _pairs(reply) if reply else None

    def due_for_recheck(self, record: Mapping[str, str]) -> bool:
        return time.time() - float(record.get("checked", 0)) >= self.recheck_s

    async def still_valid(self, sid: str, record: Mapping[str, str], user: User | None) -> bool:
        """Whether the account still stands behind the session; ends every session if not."""
        uid = int(record["uid"])
        if user is None or user.disabled or password_mark(user.password_hash) != record.get("pw"):
            await self.revoke_user(uid)
            return False
        await self.redis.hset(redis_keys.session(sid), "checked", time.time())
        return True

    async def alive(self, sids: list[str]) -> list[bool]:
        """For each id, whether its session still exists (without counting as activity)."""
        if not sids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.exists(redis_keys.session(sid))
            return [bool(n) for n in await pipe.execute()]

    async def revoke(self, sid: str) -> None:
        """End one session (sign-out)."""
        uid = await self.redis.hget(redis_keys.session(sid), "uid")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(redis_keys.session(sid))
            if uid is not None:
                pipe.srem(redis_keys.user_sessions(int(uid)), sid)
            await pipe.execute()

    async def revoke_user(self, user_id: int) -> int:
        """End every session of a user (disabled, or a new password); returns how many."""
        key = redis_keys.user_sessions(user_id)
        sids = [str(s) for s in await self.redis.smembers(key)]
        async with self.redis.pipeline(transaction=True) as pipe:
            for sid in sids:
                pipe.delete(redis_keys.session(sid))
            pipe.delete(key)
            results = await pipe.execute()
        return sum(int(n) for n in results[:-1])
