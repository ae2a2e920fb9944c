"""Delivery of server messages to whoever they are for, on whichever instance holds them.

Each instance pattern-subscribes once to ``cc:to:*`` and hands each message to the local
connections of its addressee. One Redis connection per instance, whatever the number of
WebSockets; a message for nobody here is dropped here (another instance delivers it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "cc:to:"


class Recipient(Protocol):
    def deliver(self, frame: str) -> None: ...


def channel_of(ref: str) -> str:
    return f"{CHANNEL_PREFIX}{ref}"


class Bus:
    """Publishes to a person's channel; delivers what arrives to the local connections."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._local: dict[str, set[Recipient]] = defaultdict(set)
        self._ready = asyncio.Event()

    def attach(self, ref: str, recipient: Recipient) -> None:
        self._local[ref].add(recipient)

    def detach(self, ref: str, recipient: Recipient) -> None:
        recipients = self._local.get(ref)
        if recipients is not None:
            recipients.discard(recipient)
            if not recipients:
                del self._local[ref]

    def local_refs(self) -> Iterable[str]:
        return list(self._local)

    def has_local(self, ref: str) -> bool:
        return bool(self._local.get(ref))

    async def publish(self, ref: str, message: BaseModel) -> None:
        await self._redis.publish(channel_of(ref), message.model_dump_json())

    async def publish_many(self, refs: Iterable[str], message: BaseModel) -> None:
        frame = message.model_dump_json()
        async with self._redis.pipeline(transaction=False) as pipe:
            for ref in dict.fromkeys(refs):
                pipe.publish(channel_of(ref), frame)
            await pipe.execute()

    def _deliver_local(self, ref: str, frame: str) -> None:
        for recipient in list(self._local.get(ref, ())):
            recipient.deliver(frame)

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        """Listen until cancelled, resubscribing after a Redis failure."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{CHANNEL_PREFIX}*")
                self._ready.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    channel = message["channel"]
                    ref = channel[len(CHANNEL_PREFIX) :]
                    self._deliver_local(ref, message["data"])
            except RedisError:
                log.exception("bus: redis error, resubscribing")
                await asyncio.sleep(0.5)
            finally:
                await pubsub.aclose()
