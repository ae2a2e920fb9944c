"""Delivery of server messages to whoever they are for, on whichever instance holds them.

Each instance pattern-subscribes once to ``cc:to:*`` and hands each message to the local
connections of its addressee. One Redis connection per instance, whatever the number of
WebSockets; a message for nobody here is dropped here (another instance delivers it). On a
Redis Cluster the subscription is on one node and ``PUBLISH`` on any node reaches it (a cluster
forwards classic pub/sub to every node).

A message for someone connected here is handed to their connections at once, without the round
trip through Redis, and still published for the other instances: each published frame is
prefixed with its bus's origin, and a bus drops what comes back to it from itself. So each
connection gets each message once, and the messages of one instance reach its own connections
in the order they were published.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import RedisError

from contact_center.redis_client import is_cluster

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "cc:to:"
#: length of the origin every published frame starts with (the publishing bus's, in hex)
ORIGIN_LEN = 16


class Recipient(Protocol):
    def deliver(self, frame: str) -> None: ...


def channel_of(ref: str) -> str:
    return f"{CHANNEL_PREFIX}{ref}"


class Bus:
    """Publishes to a person's channel; delivers what arrives to the local connections."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.origin = secrets.token_hex(ORIGIN_LEN // 2)
        self._local: dict[str, set[Recipient]] = defaultdict(set)
        self._ready = asyncio.Event()
        #: called after the subscription came back from a Redis failure (a failover, a
        #: restart): what was published meanwhile reached nobody here, so it is sent again
        self.on_gap: Callable[[], Awaitable[object]] | None = None
        self._gaps: set[asyncio.Task[object]] = set()

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
        frame = message.model_dump_json()
        self._deliver_local(ref, frame)
        await self._redis.publish(channel_of(ref), self.origin + frame)

    async def publish_many(self, refs: Iterable[str], message: BaseModel) -> None:
        await self.publish_frames([(refs, message.model_dump_json())])

    async def publish_frames(self, frames: Iterable[tuple[Iterable[str], str]]) -> None:
        """Deliver each (addressees, frame) here and publish it, in order, all in one round trip
        (on a cluster, which refuses PUBLISH in a pipeline, one after the other: the order is
        the point); an addressee named twice in one item gets it once."""
        published = []
        for refs, frame in frames:
            for ref in dict.fromkeys(refs):
                self._deliver_local(ref, frame)
                published.append((channel_of(ref), self.origin + frame))
        if is_cluster(self._redis):
            for channel, data in published:
                await self._redis.publish(channel, data)
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, data in published:
                pipe.publish(channel, data)
            await pipe.execute()

    def _deliver_local(self, ref: str, frame: str) -> None:
        for recipient in list(self._local.get(ref, ())):
            recipient.deliver(frame)

    def deliver_local(self, ref: str, message: BaseModel) -> None:
        """Hand ``message`` to this instance's connections of ``ref`` only (no Redis)."""
        self._deliver_local(ref, message.model_dump_json())

    def _gap(self) -> None:
        if self.on_gap is None:
            return
        task: asyncio.Task[object] = asyncio.create_task(self._fill_gap(self.on_gap), name="bus-gap")
        self._gaps.add(task)
        task.add_done_callback(self._gaps.discard)

    @staticmethod
    async def _fill_gap(fill: Callable[[], Awaitable[object]]) -> None:
        try:
            await fill()
        except Exception:
            log.exception("bus: sending again what the outage may have lost failed")

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        """Listen until cancelled, resubscribing after a Redis failure (then ``on_gap``)."""
        failed = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{CHANNEL_PREFIX}*")
                self._ready.set()
                if failed:
                    failed = False
                    log.warning("bus: subscribed again after a Redis failure")
                    self._gap()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    data: str = message["data"]
                    if data.startswith(self.origin):
                        continue  # delivered here when it was published
                    ref = message["channel"][len(CHANNEL_PREFIX) :]
                    self._deliver_local(ref, data[ORIGIN_LEN:])
            except RedisError:
                log.exception("bus: redis error, resubscribing")
                failed = True
                await asyncio.sleep(0.5)
            finally:
                await pubsub.aclose()
