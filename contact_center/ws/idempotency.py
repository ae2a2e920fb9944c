"""Idempotent requests: a retried request id of one person gets the first answer again.

The first frame with a given id reserves it in Redis (``SET NX``) before anything is done; its
answer (``ack`` or a client error) is stored for ``ANSWER_TTL_S``. A retry while the first is
still running waits briefly for its answer. When Redis does not answer, the request is refused
as ``unavailable`` before anything is done, so that a client retry cannot do it twice (a
``chat.send`` stored while the bus was down, say). A server error forgets the reservation: the
retry runs again. Ids are the client's: they must not repeat within the TTL (``ws.js`` and
``tools.wsclient`` prefix a per-page random part).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from contact_center import redis_keys
from contact_center.errors import ErrorCode, Unavailable

ANSWER_TTL_S = 600
PENDING_TTL_S = 30
RETRY_WAIT_S = 5.0
PENDING = "pending"


async def begin(redis: aioredis.Redis, ref: str, request_id: str) -> str | None:
    """Reserve ``request_id``; returns the first answer's frame when this is a retry."""
    key = redis_keys.client_request(ref, request_id)
    try:
        if await redis.set(key, PENDING, nx=True, ex=PENDING_TTL_S):
            return None
        deadline = time.monotonic() + RETRY_WAIT_S
        # the first runs on any instance: its answer can only be polled for
        while (found := await redis.get(key)) == PENDING and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    except RedisError:
        raise Unavailable("the server cannot record this request right now; try again") from None
    if found is None:
        return await begin(redis, ref, request_id)  # the first failed and forgot it: run it
    if found == PENDING:
        raise Unavailable(f"request {request_id} is still being handled; try again",
                          code=ErrorCode.UNAVAILABLE)
    return str(found)


async def finish(redis: aioredis.Redis, ref: str, request_id: str, frame: str) -> None:
    """Keep the answer for retries (best effort: the client already gets it)."""
    with contextlib.suppress(RedisError):
        await redis.set(redis_keys.client_request(ref, request_id), frame, ex=ANSWER_TTL_S)


async def forget(redis: aioredis.Redis, ref: str, request_id: str) -> None:
    with contextlib.suppress(RedisError):
        await redis.delete(redis_keys.client_request(ref, request_id))
