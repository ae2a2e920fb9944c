"""change_channel: a contact upgraded (or downgraded) inside its session, in each state."""

from __future__ import annotations

import pytest

from routing.errors import InvalidStateError, UnknownContactError
from routing.events import read_all
from routing.models import AgentState, Channel, ContactRequest, ContactState, EventType
from routing.store import RouterStore
from tests.routing.test_routing_store import T0, add_agent, text


def call(cid: str, channel: Channel) -> ContactRequest:
    return ContactRequest(id=cid, channel=channel, language="en")


async def changes(store: RouterStore) -> list[tuple[str | None, str | None, dict[str, object]]]:
    return [
        (e.contact_id, e.agent_id, e.data)
        for e in await read_all(store.redis)
        if e.type == EventType.CONTACT_CHANNEL_CHANGED
    ]


async def test_queued_contact_moves_queue_keeping_its_place(store: RouterStore) -> None:
    await store.enqueue(call("v1", Channel.VIDEO), now=T0)
    await store.enqueue(text("t"), now=T0 + 1)
    await store.enqueue(call("v2", Channel.VIDEO), now=T0 + 2)
    before = await store.contact_status("t")
    status = await store.change_channel("t", Channel.VIDEO, now=T0 + 3)
    assert status.state == ContactState.QUEUED and status.channel == Channel.VIDEO
    assert (status.queue_score, status.enqueued_at) == (before.queue_score, before.enqueued_at)
    assert await store.queue_ids("en", Channel.TEXT) == []
    assert await store.queue_ids("en", Channel.VIDEO) == ["v1", "t", "v2"]
    assert (await store.position("t", now=T0 + 3)).position == 2
    assert await changes(store) == [("t", None, {"from": "text", "to": "video", "state": "queued"})]
    # the same channel again: nothing happens
    assert (await store.change_channel("t", Channel.VIDEO, now=T0 + 4)).channel == Channel.VIDEO
    assert len(await changes(store)) == 1


async def test_queued_contact_is_offered_at_once_on_a_free_channel(store: RouterStore) -> None:
    await add_agent(store, "a", {}, text=1)
    await store.enqueue(text("t0"), now=T0)
    await store.accept("t0", "a", now=T0 + 1)
    await store.enqueue(text("t1"), now=T0 + 2)  # waits: the agent's one text slot is used
    status = await store.change_channel("t1", Channel.VOICE, now=T0 + 3)
    assert status.state == ContactState.OFFERED and status.agent_id == "a"
    assert status.channel == Channel.VOICE
    agent = await store.agent_status("a")
    assert agent.load == {Channel.TEXT: 1, Channel.VOICE: 1, Channel.VIDEO: 0}


async def test_offered_contact_keeps_its_offer_and_deadline(store: RouterStore) -> None:
    await add_agent(store, "a", {})
    offer = await store.enqueue(text("c"), now=T0)
    assert offer is not None
    status = await store.change_channel("c", Channel.VOICE, now=T0 + 5)
    assert status.state == ContactState.OFFERED and status.agent_id == "a"
    assert (status.offered_at, status.deadline) == (offer.offered_at, offer.deadline)
    agent = await store.agent_status("a")
    assert agent.load == {Channel.TEXT: 0, Channel.VOICE: 1, Channel.VIDEO: 0}
    assert agent.offered == {"c"}
    assignment = await store.accept("c", "a", now=T0 + 6)
    assert assignment.channel == Channel.VOICE
    assert await changes(store) == [("c", "a", {"from": "text", "to": "voice", "state": "offered"})]


async def test_assigned_contact_moves_its_load_or_is_refused(store: RouterStore) -> None:
    await add_agent(store, "a", {})  # text 3, voice 1, video 1
    for cid in ("c", "d"):
        await store.enqueue(text(cid), now=T0)
        await store.accept(cid, "a", now=T0 + 1)
    status = await store.change_channel("c", Channel.VOICE, now=T0 + 2)
    assert status.state == ContactState.ASSIGNED and status.channel == Channel.VOICE
    assert (await store.agent_status("a")).load == {
        Channel.TEXT: 1,
        Channel.VOICE: 1,
        Channel.VIDEO: 0,
    }
    # the voice call blocks video, and voice has one slot: d cannot follow c
    with pytest.raises(InvalidStateError, match="exclusive_channels") as refused:
        await store.change_channel("d", Channel.VIDEO, now=T0 + 3)
    assert refused.value.state == ContactState.ASSIGNED
    with pytest.raises(InvalidStateError, match="capacity"):
        await store.change_channel("d", Channel.VOICE, now=T0 + 3)
    assert (await store.contact_status("d")).channel == Channel.TEXT  # nothing changed
    assert (await store.agent_status("a")).load[Channel.TEXT] == 1
    assert len(await changes(store)) == 1
    # the contact itself is not counted twice: voice -> video on a one-slot agent is fine
    await store.change_channel("c", Channel.VIDEO, now=T0 + 4)
    assert (await store.agent_status("a")).load == {
        Channel.TEXT: 1,
        Channel.VOICE: 0,
        Channel.VIDEO: 1,
    }
    await store.complete("c", now=T0 + 5)
    await store.complete("d", now=T0 + 5)
    with pytest.raises(InvalidStateError) as finished:
        await store.change_channel("c", Channel.TEXT, now=T0 + 6)
    assert finished.value.state == ContactState.COMPLETED
    with pytest.raises(UnknownContactError):
        await store.change_channel("never", Channel.TEXT, now=T0 + 6)


async def test_a_full_text_agent_refuses_a_downgrade(store: RouterStore) -> None:
    await add_agent(store, "a", {}, text=2)
    await store.enqueue(text("t1"), now=T0)
    await store.enqueue(text("t2"), now=T0)
    await store.enqueue(call("v", Channel.VOICE), now=T0)  # text does not block voice
    with pytest.raises(InvalidStateError, match="capacity") as refused:
        await store.change_channel("v", Channel.TEXT, now=T0 + 1)
    assert refused.value.state == ContactState.OFFERED


async def test_a_downgrade_frees_the_agent_for_waiting_text(store: RouterStore) -> None:
    await add_agent(store, "a", {}, text=3)
    await store.enqueue(call("v", Channel.VOICE), now=T0)
    await store.accept("v", "a", now=T0 + 1)
    for i in range(3):  # the voice call blocks text: they wait
        assert await store.enqueue(text(f"t{i}"), now=T0 + 2 + i) is None
    await store.change_channel("v", Channel.TEXT, now=T0 + 10)
    agent = await store.agent_status("a")
    assert agent.state == AgentState.BUSY
    assert agent.assigned == {"v"} and agent.offered == {"t0", "t1"}
    assert agent.load == {Channel.TEXT: 3, Channel.VOICE: 0, Channel.VIDEO: 0}
    assert await store.queue_ids("en", Channel.TEXT) == ["t2"]
