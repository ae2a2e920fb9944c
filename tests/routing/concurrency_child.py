"""One OS process of the concurrency test: many asyncio workers driving shared contacts.

Run as ``python -m tests.routing.concurrency_child '<json config>'``. The clock runs ``speed``
times faster than the wall clock, from the same origin in every process, so offers do expire.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

from routing.errors import InvalidStateError, RoutingError
from routing.models import AgentState, Channel, ContactRequest, ContactState
from routing.policy import load_policy
from routing.store import RouterStore
from tests.redis_servers import RedisTarget

SKILLS = ["cards", "fx", "loans", "general", "complaints"]
LANGS = ["en", "zh", "yue"]


async def run(cfg: dict[str, Any]) -> dict[str, int]:
    client = RedisTarget.from_json(cfg["redis"]).client(max_connections=64)
    await client.ping()  # a cluster client learns the slots before the workers share it
    policy = load_policy()
    policy_timeout = policy.offer_timeout_s
    store = RouterStore(client, policy, prefix=cfg["prefix"])
    rng = random.Random(cfg["seed"])
    base, wall0, speed = cfg["base"], cfg["wall0"], cfg["speed"]
    stop_at = time.monotonic() + cfg["seconds"]
    counts: dict[str, int] = {}

    def now() -> float:
        return base + (time.time() - wall0) * speed

    def count(what: str) -> None:
        counts[what] = counts.get(what, 0) + 1

    todo = [f"c{i}" for i in range(cfg["first"], cfg["first"] + cfg["count"])]
    rng.shuffle(todo)
    finished = 0

    async def timer() -> None:
        while time.monotonic() < stop_at and finished < cfg["workers"]:
            if await store.process_due(now=now()):
                count("due")
            await asyncio.sleep(0.02)

    async def churn() -> None:
        agents = [f"a{i}" for i in range(cfg["agents"])]
        while time.monotonic() < stop_at and todo:
            aid = rng.choice(agents)
            r = rng.random()
            try:
                if r < 0.05:
                    await store.set_agent_state(aid, AgentState.OFFLINE, now=now())
                elif r < 0.12:
                    await store.set_agent_state(aid, AgentState.AWAY, now=now())
                elif r < 0.3:
                    await store.wrapup_done(aid, now=now())
                else:
                    await store.set_agent_state(aid, AgentState.AVAILABLE, now=now())
                count("churn")
            except RoutingError:
                count("churn_refused")
            await asyncio.sleep(0.01)

    async def drive(cid: str) -> None:
        request = ContactRequest(
            id=cid,
            channel=rng.choices(list(Channel), [6, 3, 1])[0],
            language=rng.choice(LANGS),
            skills={rng.choice(SKILLS): rng.randint(1, 3)},
            optional_skills={rng.choice(SKILLS): 2} if rng.random() < 0.2 else {},
            priority=rng.randint(0, 2),
            vip=rng.random() < 0.1,
        )
        await store.enqueue(request, now=now())
        for _ in range(80):
            if time.monotonic() > stop_at:
                return
            status = await store.contact_status(cid)
            r = rng.random()
            try:
                if status.state == ContactState.QUEUED:
                    if r < 0.02:
                        await store.cancel(cid, now=now())
                        count("cancel_queued")
                    elif r < 0.03:
                        await store.change_channel(cid, rng.choice(list(Channel)), now=now())
                        count("change_channel_queued")
                elif status.state == ContactState.OFFERED:
                    assert status.agent_id is not None
                    if r < 0.55:
                        await store.accept(cid, status.agent_id, now=now())
                        count("accept")
                    elif r < 0.7:
                        await store.reject(cid, status.agent_id, now=now())
                        count("reject")
                    elif r < 0.9:
                        count("let_expire")  # the advisor does not answer: the timer expires it
                        await asyncio.sleep(1.2 * policy_timeout / speed)
                    elif r < 0.95:
                        await store.cancel(cid, now=now())
                        count("cancel_offered")
                    else:
                        await store.requeue_front(cid, now=now())
                        count("agent_dropped")
                elif status.state == ContactState.ASSIGNED:
                    if r < 0.6:
                        await store.complete(cid, now=now())
                        count("complete")
                    elif r < 0.75:
                        await store.cancel(cid, now=now())
                        count("customer_left")
                    elif r < 0.85:
                        await store.transfer(cid, skills={rng.choice(SKILLS): 1}, now=now())
                        count("transfer")
                    elif r < 0.9:
                        await store.requeue_front(cid, now=now())
                        count("agent_dropped")
                    elif r < 0.95:  # an upgrade or downgrade inside the session
                        try:
                            await store.change_channel(cid, rng.choice(list(Channel)), now=now())
                            count("change_channel")
                        except InvalidStateError as exc:
                            count("change_channel_refused" if exc.state == "assigned" else "raced")
                else:
                    return
            except RoutingError:
                count("raced")  # another worker or the timer changed it first
            await asyncio.sleep(rng.uniform(0.005, 0.05))

    async def worker() -> None:
        nonlocal finished
        while todo and time.monotonic() < stop_at:
            await drive(todo.pop())
        finished += 1

    async with asyncio.TaskGroup() as tg:
        tg.create_task(timer())
        tg.create_task(churn())
        for _ in range(cfg["workers"]):
            tg.create_task(worker())
    await client.aclose()
    return counts


def main() -> None:
    counts = asyncio.run(run(json.loads(sys.argv[1])))
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
