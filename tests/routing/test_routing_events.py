"""The event stream: consumer groups, acknowledgement and resuming after a restart."""

from __future__ import annotations

import redis.asyncio as aioredis

from routing.events import EventReader, read_all
from routing.models import AgentProfile, AgentState, Channel, ContactRequest, EventType
from routing.store import RouterStore

T0 = 5_000.0


async def make_traffic(store: RouterStore, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await store.enqueue(
            ContactRequest(id=f"c{i}", channel=Channel.TEXT, language="en"), now=T0 + i
        )


async def test_a_restarted_consumer_gets_unacknowledged_events_again(
    redis_client: aioredis.Redis, store: RouterStore
) -> None:
    await make_traffic(store, 3)
    reader = EventReader(redis_client, group="ws", consumer="instance-1")
    first = await reader.read(block_ms=None)
    assert [e.type for e in first] == [EventType.CONTACT_QUEUED] * 3
    await reader.ack(first[:1])  # crashed after handling only the first one

    restarted = EventReader(redis_client, group="ws", consumer="instance-1")
    again = await restarted.read(block_ms=None)
    assert [e.id for e in again] == [e.id for e in first[1:]]
    await restarted.ack(again)
    await make_traffic(store, 2, start=3)
    fresh = await restarted.read(block_ms=None)
    assert [e.contact_id for e in fresh] == ["c3", "c4"]
    await restarted.ack(fresh)
    assert await restarted.read(block_ms=None) == []


async def test_groups_see_everything_and_consumers_share_a_group(
    redis_client: aioredis.Redis, store: RouterStore
) -> None:
    await make_traffic(store, 4)
    one = EventReader(redis_client, group="shared", consumer="one", count=2)
    two = EventReader(redis_client, group="shared", consumer="two", count=2)
    other = EventReader(redis_client, group="audit", consumer="x")
    a, b = await one.read(block_ms=None), await two.read(block_ms=None)
    assert len(a) == 2 and len(b) == 2 and not {e.id for e in a} & {e.id for e in b}
    assert len(await other.read(block_ms=None)) == 4
    # "one" and "two" die without acknowledging: a new instance claims their events
    three = EventReader(redis_client, group="shared", consumer="three")
    claimed = await three.claim_stale(min_idle_ms=0)
    assert sorted(e.id for e in claimed) == sorted(e.id for e in b + a)


async def test_offer_events_carry_type_ids_time_and_explanation(
    redis_client: aioredis.Redis, store: RouterStore
) -> None:
    reader = EventReader(redis_client, group="g", consumer="c", start="$")
    assert await reader.read(block_ms=None) == []
    await store.upsert_agent(
        AgentProfile(id="a", languages=frozenset({"en"}), skills={"cards": 4}), now=T0
    )
    await store.set_agent_state("a", AgentState.AVAILABLE, now=T0)
    await store.enqueue(
        ContactRequest(id="c", channel=Channel.TEXT, language="en", skills={"cards": 2}),
        now=T0 + 1,
    )
    await store.reject("c", "a", now=T0 + 2)
    events = await reader.read(block_ms=100)
    by_type = {e.type: e for e in events}
    offer = by_type[EventType.OFFER_CREATED]
    assert (offer.contact_id, offer.agent_id, offer.time) == ("c", "a", T0 + 1)
    assert offer.data["deadline"] == T0 + 21
    assert offer.explanation is not None and offer.explanation.candidates[0].agent_id == "a"
    rejected = by_type[EventType.OFFER_REJECTED]
    assert rejected.data["misses"] == 1 and rejected.time == T0 + 2
    assert by_type[EventType.CONTACT_REQUEUED].contact_id == "c"
    state = by_type[EventType.AGENT_STATE_CHANGED]
    assert state.agent_id == "a" and {"from", "to"} <= set(state.data)


async def test_a_decision_is_one_stream_entry_with_its_events_in_order(
    redis_client: aioredis.Redis, store: RouterStore
) -> None:
    await store.upsert_agent(
        AgentProfile(id="a", languages=frozenset({"en"}), skills={"cards": 4}), now=T0
    )
    await store.set_agent_state("a", AgentState.AVAILABLE, now=T0)
    before = await redis_client.xlen(store.keys.events)
    await store.enqueue(
        ContactRequest(id="c", channel=Channel.VOICE, language="en", skills={"cards": 2}),
        now=T0 + 1,
    )
    assert await redis_client.xlen(store.keys.events) == before + 1
    events = [e for e in await read_all(redis_client) if e.time == T0 + 1]
    assert [e.type for e in events] == [
        EventType.CONTACT_QUEUED,
        EventType.OFFER_CREATED,
        EventType.AGENT_STATE_CHANGED,
    ]
    entry = events[0].entry_id
    assert [e.id for e in events] == [f"{entry}/0", f"{entry}/1", f"{entry}/2"]
    assert events[0].data == {"channel": "voice", "language": "en", "priority": 0, "vip": False}
    assert events[2].data == {"from": "available", "to": "busy"} and events[2].agent_id == "a"


async def test_an_entry_is_acknowledged_once_all_its_events_are(
    redis_client: aioredis.Redis, store: RouterStore
) -> None:
    await store.upsert_agent(AgentProfile(id="a", languages=frozenset({"en"}), skills={}), now=T0)
    await store.set_agent_state("a", AgentState.AVAILABLE, now=T0)
    reader = EventReader(redis_client, group="g", consumer="c", start="$")
    assert await reader.read(block_ms=None) == []
    await store.enqueue(ContactRequest(id="c", channel=Channel.VIDEO, language="en"), now=T0 + 1)
    decision = await reader.read(block_ms=None)
    assert len(decision) == 3
    assert await reader.ack(decision[:2]) == 0  # handled two of three, then died
    restarted = EventReader(redis_client, group="g", consumer="c")
    again = await restarted.read(block_ms=None)
    assert [e.id for e in again] == [e.id for e in decision]  # the whole decision again
    for event in again:
        await restarted.ack(event)
    pending = await redis_client.xpending(store.keys.events, "g")
    assert pending["pending"] == 0


async def test_entries_written_one_event_each_are_still_read(
    redis_client: aioredis.Redis, store: RouterStore
) -> None:
    # the layout before a decision's events shared an entry: one event per entry
    await redis_client.xadd(
        store.keys.events,
        {
            "type": "offer_created",
            "time": repr(T0),
            "contact_id": "c",
            "agent_id": "a",
            "data": '{"channel":"text","deadline":5020}',
            "explanation": '{"trigger":"contact","ring":0,"considered":1,"winner":'
            '{"agent_id":"a","fit_required":0,"fit_optional":0,"idle_s":1},"candidates":{}}',
        },
    )
    [event] = await read_all(redis_client)
    assert (event.type, event.contact_id, event.agent_id, event.time) == (
        EventType.OFFER_CREATED,
        "c",
        "a",
        T0,
    )
    assert event.data == {"channel": "text", "deadline": 5020}
    assert event.explanation is not None and event.explanation.winner.agent_id == "a"
    assert event.explanation.candidates == []
