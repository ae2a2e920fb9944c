"""One WebSocket connection (a bounded outbox drained by one writer task), the per-person
presence lock, and the token bucket that rate-limits what a client sends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from contact_center import metrics, redis_keys
from contact_center.identity.auth import Identity
from contact_center.protocol import Error

log = logging.getLogger(__name__)


#: A person's connect or disconnect handling takes well under this; a lock held by an instance
#: that died mid-way frees itself after it.
PRESENCE_LOCK_TTL_MS = 15_000
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PresenceLocks:
    """One lock per person: a quick reconnect waits until the old socket's clean-up is done,
    so that the grace period it starts is seen (and cancelled) by the new connection.

    With ``redis`` the lock also spans instances (a reconnect landing on another instance while
    the old socket's clean-up runs); when Redis does not answer, the local lock alone is held.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, ref: str, redis: aioredis.Redis | None = None) -> AsyncIterator[None]:
        lock, users = self._locks.get(ref, (asyncio.Lock(), 0))
        self._locks[ref] = (lock, users + 1)
        try:
            async with lock, _redis_lock(redis, ref):
                yield
        finally:
            lock, users = self._locks[ref]
            if users == 1:
                del self._locks[ref]
            else:
                self._locks[ref] = (lock, users - 1)


@contextlib.asynccontextmanager
async def _redis_lock(redis: aioredis.Redis | None, ref: str) -> AsyncIterator[None]:
    if redis is None:
        yield
        return
    key, token = redis_keys.presence_lock(ref), secrets.token_hex(8)
    held = False
    try:
        deadline = time.monotonic() + PRESENCE_LOCK_TTL_MS / 1000
        while not (held := bool(await redis.set(key, token, nx=True, px=PRESENCE_LOCK_TTL_MS))):
            if time.monotonic() > deadline:
                log.warning("presence lock of %s still held elsewhere: going on without", ref)
                break
            await asyncio.sleep(0.02)
    except RedisError:
        log.warning("presence lock of %s: Redis does not answer, local lock only", ref)
    try:
        yield
    finally:
        if held:
            with contextlib.suppress(RedisError):
                await redis.eval(_RELEASE, 1, key, token)


class TokenBucket:
    """Allows ``rate`` messages a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Connection:
    """One WebSocket: a bounded outbox drained by a single writer task."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, *, queue_size: int) -> None:
        self.ws = ws
        self.request = request
        self.identity: Identity | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self._writer: asyncio.Task[None] | None = None
        self.overflowed = False
        self.media_only = False
        self.active = False  # the client sent something since the session sweep last looked

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name="ws-writer")

    def deliver(self, frame: str) -> None:
        """Queue a frame; a client too slow to keep up is disconnected, not buffered forever."""
        if self.overflowed:
            return
        try:
            self._outbox.put_nowait(frame)
            metrics.WS_FRAMES.labels("out").inc()
        except asyncio.QueueFull:
            self.overflowed = True
            who = self.identity.ref if self.identity else "anonymous"
            log.warning(
                "websocket send queue full: disconnecting a slow client", extra={"who": who}
            )
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    def send(self, message: Any) -> None:
        if isinstance(message, Error):
            metrics.WS_ERRORS.labels(message.code).inc()
        self.deliver(message.model_dump_json())

    async def _write(self) -> None:
        while True:
            frame = await self._outbox.get()
            try:
                await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return

    async def close(self, code: int = 1000, message: str = "") -> None:
        if self._writer is not None:
            # let what is queued go out first (briefly), then stop the writer
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while not self._outbox.empty() and not self.ws.closed:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if not self.ws.closed:
            await self.ws.close(code=code, message=message.encode())
