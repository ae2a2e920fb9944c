"""The bus against a real Redis (and a Redis Cluster): a message reaches the addressee's
connections on any instance."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from contact_center.bus import Bus
from contact_center.protocol import PeerEvent
from tests.redis_servers import ON_CLUSTER_TOO, RedisTarget


class Inbox:
    def __init__(self) -> None:
        self.frames: list[dict[str, object]] = []
        self.arrived = asyncio.Event()

    def deliver(self, frame: str) -> None:
        self.frames.append(json.loads(frame))
        self.arrived.set()


async def _running(bus: Bus) -> asyncio.Task[None]:
    task = asyncio.create_task(bus.run())
    async with asyncio.timeout(5):
        await bus.wait_ready()
    return task


@ON_CLUSTER_TOO
async def test_a_message_reaches_the_addressee_on_another_instance(redis_target: RedisTarget) -> None:
    one, two = redis_target.client(), redis_target.client()
    await one.ping()
    await two.ping()
    here, there = Bus(one), Bus(two)
    tasks = [await _running(here), await _running(there)]
    try:
        alice, bob, alice_second_tab = Inbox(), Inbox(), Inbox()
        there.attach("user:alice", alice)
        there.attach("user:alice", alice_second_tab)
        here.attach("user:bob", bob)
        message = PeerEvent(contact_id="c1", party="advisor", state="disconnected")
        await here.publish("user:alice", message)
        async with asyncio.timeout(5):
            await alice.arrived.wait()
            await alice_second_tab.arrived.wait()
        assert alice.frames == [json.loads(message.model_dump_json())]
        assert bob.frames == []

        await here.publish_many(["user:alice", "user:bob", "user:alice"], message)
        async with asyncio.timeout(5):
            await bob.arrived.wait()
            while len(alice.frames) < 2:  # noqa: ASYNC110 - counters set by the bus task
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert len(alice.frames) == 2  # the repeated ref is published once
        assert len(bob.frames) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await one.aclose()
        await two.aclose()


@ON_CLUSTER_TOO
async def test_a_message_for_someone_here_is_delivered_at_once_and_once(
    redis_target: RedisTarget,
) -> None:
    one, two = redis_target.client(), redis_target.client()
    await one.ping()  # a cluster client learns its slots
    await two.ping()
    here, there = Bus(one), Bus(two)
    tasks = [await _running(here), await _running(there)]
    try:
        bob, bob_elsewhere = Inbox(), Inbox()
        here.attach("user:bob", bob)
        there.attach("user:bob", bob_elsewhere)
        lines = [
            PeerEvent(contact_id=f"c{n}", party="advisor", state="connected").model_dump_json()
            for n in range(5)
        ]
        await here.publish_frames([(["user:bob", "user:bob"], line) for line in lines])
        # here: handed over before the publish returned, not from Redis; there: from Redis
        assert [f["contact_id"] for f in bob.frames] == [f"c{n}" for n in range(5)]
        async with asyncio.timeout(5):
            while len(bob_elsewhere.frames) < 5:  # noqa: ASYNC110 - counters set by the bus task
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # what comes back from Redis to ``here`` is dropped
        assert [f["contact_id"] for f in bob.frames] == [f"c{n}" for n in range(5)]
        assert bob_elsewhere.frames == bob.frames
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await one.aclose()
        await two.aclose()


def test_attach_and_detach_track_who_is_here() -> None:
    bus = Bus(aioredis.Redis())  # never connects: only local bookkeeping is used
    inbox = Inbox()
    assert not bus.has_local("user:a")
    bus.attach("user:a", inbox)
    assert bus.has_local("user:a") and list(bus.local_refs()) == ["user:a"]
    bus.detach("user:a", inbox)
    bus.detach("user:a", inbox)  # twice is harmless
    assert not bus.has_local("user:a") and list(bus.local_refs()) == []
