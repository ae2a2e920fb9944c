"""A text contact from start to end through the real WebSocket, router, DB and Redis."""

from __future__ import annotations

from sqlmodel import select

from contact_center import keys
from contact_center.db import transaction
from contact_center.models import ChatMessage as ChatRow
from contact_center.models import ContactEvent


async def test_text_contact_full_lifecycle(server, clients, advisor_factory):
    advisor_user = await advisor_factory()
    advisor = await clients(username=advisor_user.username)
    assert (await advisor.request("agent.status", status="available"))["state"] == "available"

    customer = await clients(guest=True)
    started = await customer.request(
        "session.start", channels=["text"], language="en", topic="cards", skip_bot=True
    )
    contact_id = started["contact_id"]
    assert started["resume_token"]

    offer = await advisor.wait_for("offer", contact_id=contact_id)
    assert offer["language"] == "en" and offer["skills"] == {"cards": 2}
    assert offer["explanation"]["winner"]["agent_id"] == str(advisor_user.id)
    accepted = await advisor.request("offer.accept", contact_id=contact_id)
    assert accepted["state"] == "connected"
    assert (await advisor.request("offer.accept", contact_id=contact_id))["state"] == "connected"
    await customer.wait_for("session.state", contact_id=contact_id, state="connected")

    for i in range(5):
        await customer.request("chat.send", contact_id=contact_id, text=f"customer {i}")
        await advisor.request("chat.send", contact_id=contact_id, text=f"advisor {i}")
    seen_by_advisor = [await advisor.wait_for("chat.message", contact_id=contact_id) for _ in range(10)]
    seqs = [m["seq"] for m in seen_by_advisor]
    assert sorted(seqs) == list(range(1, 11)) and len(set(seqs)) == 10

    await customer.request("chat.typing", contact_id=contact_id)
    assert (await advisor.wait_for("chat.typing"))["sender"] == "customer"

    await customer.request("session.end", contact_id=contact_id)
    await advisor.wait_for("session.state", contact_id=contact_id, state="wrap_up")
    done = await advisor.request("wrapup.done", contact_id=contact_id)
    assert done["ended"] == [contact_id]

    async with transaction(server.app[keys.DB]) as session:
        rows = (await session.exec(select(ChatRow).where(ChatRow.contact_id == contact_id))).all()
        events = (
            await session.exec(
                select(ContactEvent).where(ContactEvent.contact_id == contact_id).order_by(ContactEvent.id)
            )
        ).all()
    assert [r.text for r in sorted(rows, key=lambda r: r.seq) if r.sender_role == "customer"] == [
        f"customer {i}" for i in range(5)
    ]
    states = [e.to_state for e in events if e.to_state]
    assert states == ["queued", "offered", "connected", "wrap_up", "ended"]
    assert all(e.actor for e in events)
