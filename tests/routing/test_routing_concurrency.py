"""Two OS processes, each with many asyncio workers, share one Redis router.

200 agents, 1,000 contacts, random accepts, rejects, timeouts, transfers, agent drops and
customer disconnects; afterwards the invariants must hold in Redis and in the event stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from routing.events import EventReader
from routing.models import AgentProfile, AgentState, Channel, EventType
from routing.policy import load_policy
from routing.store import RouterStore
from tests.redis_servers import RedisTarget

ROOT = Path(__file__).resolve().parents[2]
AGENTS = 200
CONTACTS = 1000
#: on the Redis Cluster (whose client costs more per call): the same run, fewer contacts
CLUSTER_CONTACTS = 400
SPEED = 20.0  # simulated seconds per real second: a 20 s offer timeout lasts 1 s
SKILLS = ["cards", "fx", "loans", "general", "complaints"]
LANGS = ["en", "zh", "yue"]

RELEASING = {EventType.OFFER_REJECTED, EventType.OFFER_EXPIRED, EventType.OFFER_RELEASED}
#: events after which the contact is with nobody, and the state it is then in
RELEASES = {
    EventType.OFFER_REJECTED: "queued",
    EventType.OFFER_EXPIRED: "queued",
    EventType.OFFER_RELEASED: "queued",
    EventType.CONTACT_REQUEUED: "queued",
    EventType.CONTACT_TRANSFERRED: "queued",
    EventType.CONTACT_COMPLETED: "completed",
    EventType.CONTACT_CANCELLED: "cancelled",
}


@pytest.mark.slow
async def test_two_processes_keep_every_invariant(
    redis_client: aioredis.Redis, redis_target: RedisTarget
) -> None:
    policy = load_policy()
    total = CLUSTER_CONTACTS if redis_target.cluster else CONTACTS
    prefix = f"cc:rt:conc:{uuid.uuid4().hex[:8]}"
    store = RouterStore(redis_client, policy, prefix=prefix)
    rng = random.Random(7)
    base, wall0 = 2_000_000.0, time.time()
    profiles = {}
    for i in range(AGENTS):
        profile = AgentProfile(
            id=f"a{i}",
            languages=frozenset(rng.sample(LANGS, rng.randint(1, 2))),
            skills={s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(2, 4))},
        )
        profiles[profile.id] = profile
        await store.upsert_agent(profile, now=base)
        await store.set_agent_state(profile.id, AgentState.AVAILABLE, now=base)

    def child(index: int) -> subprocess.Popen[str]:
        cfg = {
            "redis": redis_target.to_json(),
            "prefix": prefix,
            "seed": 100 + index,
            "base": base,
            "wall0": wall0,
            "speed": SPEED,
            "first": index * total // 2,
            "count": total // 2,
            "agents": AGENTS,
            "workers": 40,
            "seconds": 25,
        }
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen(
            [sys.executable, "-m", "tests.routing.concurrency_child", json.dumps(cfg)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    procs = [child(0), child(1)]
    outputs = await asyncio.gather(*(asyncio.to_thread(p.communicate, timeout=120) for p in procs))
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    done = Counter[str]()
    for out, _ in outputs:
        done.update(json.loads(out.strip().splitlines()[-1]))
    # the run exercised every path, including the timer's expiries
    for what in (
        "accept",
        "reject",
        "let_expire",
        "complete",
        "transfer",
        "cancel_offered",
        "change_channel",
    ):
        assert done[what] > 0, (what, done)

    # --- invariants from Redis ------------------------------------------------------------------
    agents = {a.id: a for a in await store.agent_views()}
    contacts = {c.id: c for c in await store.contact_views()}
    queued_ids: list[str] = []
    for lang in LANGS:
        for ch in Channel:
            queued_ids += await store.queue_ids(lang, ch)
    assert len(queued_ids) == len(set(queued_ids)), "a contact queued twice"
    assert set(contacts) == {f"c{i}" for i in range(total)}, "a contact was lost"
    holders: dict[str, list[str]] = {}
    for a in agents.values():
        for cid in a.held:
            holders.setdefault(cid, []).append(a.id)
        for ch in Channel:
            held = sum(1 for cid in a.held if contacts[cid].channel == ch.value)
            assert held == a.load.get(ch.value, 0) <= a.capacity[ch.value], (a.id, ch)
        if any(how == "offered" for how in a.held.values()):
            assert a.presence == "available", a.id
    for c in contacts.values():
        assert c.state in ("queued", "offered", "assigned", "completed", "cancelled")
        assert (c.id in queued_ids) == (c.state == "queued"), c.id
        if c.state in ("offered", "assigned"):
            assert holders.get(c.id) == [c.agent], (c.id, holders.get(c.id))
            assert c.language in agents[c.agent].languages, ("language", c.id)
        else:
            assert c.id not in holders, c.id
    assert Counter(c.state for c in contacts.values())["completed"] > 0

    # --- invariants from the event stream, replayed in order ------------------------------------
    reader = EventReader(redis_client, group="checker", consumer="c1", prefix=prefix)
    channel: dict[str, str] = {}
    language: dict[str, str] = {}
    holder: dict[str, str | None] = {}
    state: dict[str, str] = {}
    held: dict[str, Counter[str]] = {aid: Counter() for aid in agents}
    n_events = 0
    types = Counter[str]()
    while batch := await reader.read(block_ms=None):
        for e in batch:
            n_events += 1
            types[e.type] += 1
            cid, aid = e.contact_id, e.agent_id
            if e.type == EventType.CONTACT_QUEUED:
                assert cid is not None
                channel[cid], language[cid] = e.data["channel"], e.data["language"]
                holder[cid], state[cid] = None, "queued"
            elif e.type == EventType.OFFER_CREATED:
                assert cid is not None and aid is not None
                assert holder[cid] is None, f"{cid} offered while held by {holder[cid]}"
                assert language[cid] in profiles[aid].languages, ("language", cid, aid)
                for blocking in policy.exclusive_channels:
                    if blocking != channel[cid]:
                        assert held[aid][blocking.value] == 0, ("blocked channel", aid, e.id)
                holder[cid], state[cid] = aid, "offered"
                held[aid][channel[cid]] += 1
                for ch in Channel:
                    assert held[aid][ch.value] <= agents[aid].capacity[ch.value], (aid, e.id)
                assert e.explanation is not None and e.explanation.winner.agent_id == aid
            elif e.type == EventType.CONTACT_CHANNEL_CHANGED:
                assert cid is not None and e.data["from"] == channel[cid], (cid, e.id)
                new = channel[cid] = e.data["to"]
                if aid is not None:
                    assert holder[cid] == aid and state[cid] in ("offered", "assigned"), e.id
                    held[aid][e.data["from"]] -= 1
                    for blocking in policy.exclusive_channels:  # as for an offer on `new`
                        if blocking != new:
                            assert held[aid][blocking.value] == 0, ("blocked channel", aid, e.id)
                    held[aid][new] += 1
                    for ch in Channel:
                        assert held[aid][ch.value] <= agents[aid].capacity[ch.value], (aid, e.id)
                else:
                    assert holder[cid] is None and state[cid] == "queued", e.id
            elif e.type == EventType.OFFER_ACCEPTED:
                assert cid is not None and holder[cid] == aid and state[cid] == "offered"
                state[cid] = "assigned"
            elif e.type in RELEASES:
                assert cid is not None
                if aid is not None and holder[cid] is not None:
                    assert holder[cid] == aid, (e.type, cid, holder[cid], aid)
                    held[aid][channel[cid]] -= 1
                    holder[cid] = None
                if e.type in RELEASING:
                    assert holder[cid] is None
                state[cid] = RELEASES[e.type]
                if e.type == EventType.CONTACT_TRANSFERRED:
                    language[cid] = e.data["language"]
        await reader.ack(batch)
    assert n_events > total
    for kind in (EventType.OFFER_EXPIRED, EventType.OFFER_REJECTED, EventType.OFFER_RELEASED):
        assert types[kind] > 0, (kind, types)
    for cid, c in contacts.items():
        assert state[cid] == c.state, (cid, state[cid], c.state)
        assert holder[cid] == c.agent if c.state in ("offered", "assigned") else holder[cid] is None
    for aid, a in agents.items():
        for ch in Channel:
            assert held[aid][ch.value] == a.load.get(ch.value, 0), (aid, ch)
