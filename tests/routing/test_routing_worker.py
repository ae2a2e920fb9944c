"""The timer loop: expiries happen once, whatever the number of instances, and on start."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis

from routing.events import read_all
from routing.models import AgentProfile, AgentState, Channel, ContactRequest, ContactState
from routing.policy import Policy
from routing.store import RouterStore
from routing.worker import RouterWorker


async def offers(store: RouterStore, n: int, now: float) -> None:
    for i in range(n):
        aid = f"a{i}"
        await store.upsert_agent(AgentProfile(id=aid, languages=frozenset({"en"})), now=now)
        await store.set_agent_state(aid, AgentState.AVAILABLE, now=now)
        await store.enqueue(
            ContactRequest(id=f"c{i}", channel=Channel.VOICE, language="en"), now=now
        )


async def test_many_instances_expire_each_offer_exactly_once(
    redis_client: aioredis.Redis, policy: Policy
) -> None:
    stores = [RouterStore(redis_client, policy) for _ in range(6)]
    await offers(stores[0], 150, now=1000.0)
    handled = await asyncio.gather(*(s.process_due(now=1025.0) for s in stores))
    expired = [e for e in await read_all(redis_client) if e.type == "offer_expired"]
    assert sorted(e.contact_id or "" for e in expired) == sorted(f"c{i}" for i in range(150))
    assert sum(handled) >= 150
    # each contact went back and, its only agent excluded, was offered to another one
    statuses = [await stores[0].contact_status(f"c{i}") for i in range(150)]
    assert all(s.state in (ContactState.QUEUED, ContactState.OFFERED) for s in statuses)


async def test_worker_expires_on_start_and_stops_cleanly_when_cancelled(
    redis_client: aioredis.Redis, policy: Policy
) -> None:
    store = RouterStore(redis_client, policy)
    # offers made an hour ago, while no timer ran anywhere
    await offers(store, 3, now=time.time() - 3600)
    worker = RouterWorker(store, interval=0.01)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(500):  # bounded wait for the first pass, not a speed assertion
            if worker.processed >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()
    for i in range(3):
        status = await store.contact_status(f"c{i}")
        # expired while no timer ran: released without a miss, and offered again
        assert status.excluded_agents == frozenset()
        assert status.state is ContactState.OFFERED
        assert (await store.agent_status(f"a{i}")).missed_offers == 0
