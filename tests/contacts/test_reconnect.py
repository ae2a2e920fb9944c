"""Dropped connections: resume keeps the place; grace expiry abandons; advisor drop re-queues."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, ContactEvent
from contact_center.tools.wsclient import SignallingClient
from routing.models import ContactState as RouterState


async def _state_of(server, contact_id: str) -> str:
    async with transaction(server.app[appkeys.DB]) as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None
    return contact.state


async def _wait_state(server, contact_id: str, state: str, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while await _state_of(server, contact_id) != state:
            await asyncio.sleep(0.05)


async def test_resume_with_token_keeps_the_place_in_the_queue(server, clients):
    first = await clients(guest=True)
    second = await clients(guest=True)
    a = await first.request("session.start", channels=["text"], language="en", skip_bot=True)
    b = await second.request("session.start", channels=["text"], language="en", skip_bot=True)
    await first.request("chat.send", contact_id=a["contact_id"], text="still there?")
    await first.close()
    await asyncio.sleep(0.3)
    # a new connection with no cookie: the resume token proves whose contact it is
    again = SignallingClient(str(server.make_url("")))
    await again.as_guest()
    await again.connect()
    try:
        resumed = await again.request("session.resume", resume_token=a["resume_token"])
        assert resumed == {"contact_id": a["contact_id"], "state": "queued"}
        history = await again.wait_for("chat.message", contact_id=a["contact_id"])
        assert history["text"] == "still there?"
        await asyncio.sleep(1.5)  # longer than the grace period: nothing happens after a resume
        assert await _state_of(server, a["contact_id"]) == "queued"
        router = server.app[appkeys.ROUTER]
        first_pos = await router.position(a["contact_id"])
        second_pos = await router.position(b["contact_id"])
        assert (first_pos.position, second_pos.position) == (1, 2)
    finally:
        await again.close()


async def test_grace_expiry_abandons_and_cancels_in_the_router(server, clients):

    customer = await clients(guest=True)
    started = await customer.request("session.start", channels=["voice"], language="zh", skip_bot=True)
    await customer.close()
    await _wait_state(server, started["contact_id"], "abandoned")
    status = await server.app[appkeys.ROUTER].contact_status(started["contact_id"])
    assert status.state is RouterState.CANCELLED
    async with transaction(server.app[appkeys.DB]) as session:
        events = (
            await session.exec(select(ContactEvent).where(ContactEvent.contact_id == started["contact_id"]))
        ).all()
    assert [e.kind for e in events][-1] == "customer_gone"


async def test_advisor_drop_requeues_at_the_front_for_another_advisor(server, clients, advisor_factory):
    first_user = await advisor_factory()
    first = await clients(username=first_user.username)
    await first.request("agent.status", status="available")
    customer = await clients(guest=True)
    started = await customer.request("session.start", channels=["text"], language="en", skip_bot=True)
    contact_id = started["contact_id"]
    await first.wait_for("offer", contact_id=contact_id)
    await first.request("offer.accept", contact_id=contact_id)
    await customer.wait_for("session.state", contact_id=contact_id, state="connected")

    await first.close()
    told = await customer.wait_for("peer.event", contact_id=contact_id, party="advisor")
    assert told["state"] == "disconnected"
    back = await customer.wait_for(
        "session.state", contact_id=contact_id, state="queued", reason="advisor_gone"
    )
    assert back["channels"] == ["text"]

    second_user = await advisor_factory()
    second = await clients(username=second_user.username)
    await second.request("agent.status", status="available")
    offer = await second.wait_for("offer", contact_id=contact_id)
    assert offer["contact_id"] == contact_id


async def test_advisor_reconnect_within_grace_keeps_the_contact(server, clients, advisor_factory):
    user = await advisor_factory()
    advisor = await clients(username=user.username)
    await advisor.request("agent.status", status="available")
    customer = await clients(guest=True)
    contact_id = (await customer.request("session.start", channels=["text"], language="en", skip_bot=True))["contact_id"]
    await advisor.wait_for("offer", contact_id=contact_id)
    await advisor.request("offer.accept", contact_id=contact_id)
    await customer.request("chat.send", contact_id=contact_id, text="hello")
    await advisor.close()
    again = await clients(username=user.username)
    resumed = await again.wait_for("session.state", contact_id=contact_id, state="connected")
    assert resumed["reason"] == "resumed"
    assert (await again.wait_for("chat.message", contact_id=contact_id))["text"] == "hello"
    # the status they had comes back with them (busy: available, holding the contact)
    assert (await again.wait_for("agent.state"))["state"] == "busy"
    await asyncio.sleep(1.5)
    assert await _state_of(server, contact_id) == "connected"
