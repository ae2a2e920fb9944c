"""What the advisor is told about a contact (offer, accept, resume) and who wrote each line,
through the real WebSocket, router, database and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contact_center import appkeys
from contact_center.contacts.core import facts_from
from contact_center.contacts.states import ContactState
from contact_center.db.models import Contact, ContactEvent, Role
from contact_center.identity.auth import Identity
from routing.models import Channel
from tests.helpers import make_user

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _event(seconds: float, kind: str, frm: str | None, to: str | None, **data: object) -> ContactEvent:
    return ContactEvent(
        contact_id="c1", at=T0 + timedelta(seconds=seconds), actor="x", kind=kind,
        from_state=frm, to_state=to, data=dict(data),
    )


def test_waiting_restarts_on_a_new_queue_entry_not_on_an_offer_that_came_back() -> None:
    contact = Contact(
        id="c1", customer_ref="guest:ab", customer_name="Guest", channels=["text"], language="en",
        topic="cards", skills={"cards": 2}, priority=3, vip=False, state="connected",
        created_at=T0,
    )
    events = [
        _event(0, "created", None, "bot"),
        _event(30, "handoff", "bot", "queued", intent="report_lost_card"),
        _event(40, "offered", "queued", "offered"),
        _event(60, "offer_expired", "offered", "queued"),
        _event(70, "offered", "queued", "offered"),
        _event(75, "accepted", "offered", "connected"),
    ]
    facts = facts_from(contact, events, now=T0 + timedelta(seconds=500))
    # the bot's 30 s are not waiting; the expired offer did not restart it; connected stops it
    assert facts.waiting_s == 45.0
    assert facts.intent == "report_lost_card" and facts.priority == 3
    assert facts.guest and not facts.vip
    transferred = [*events, _event(200, "transferred", "connected", "queued")]
    later = facts_from(contact, transferred, now=T0 + timedelta(seconds=212))
    assert later.waiting_s == 12.0


async def test_offer_and_accept_carry_the_facts_and_named_advisors(
    server, clients, advisor_factory, fast_settings
):
    best = await advisor_factory(display_name="Emma Lau", skills={"cards": 5})
    other = await advisor_factory(display_name="Ken Ho", skills={"cards": 3})
    first = await clients(username=best.username)
    second = await clients(username=other.username)
    for advisor in (first, second):
        await advisor.request("agent.status", status="available")
    vip_user = await make_user(fast_settings, Role.CUSTOMER, display_name="Mei Chan", vip=True)
    customer = await clients(username=vip_user.username)
    started = await customer.request(
        "session.start", channels=["text"], language="en", topic="cards", skip_bot=True
    )
    contact_id = started["contact_id"]
    offer = await first.wait_for("offer", contact_id=contact_id)
    facts = offer["facts"]
    assert facts["customer_name"] == "Mei Chan" and facts["vip"] is True and not facts["guest"]
    assert facts["priority"] == 0 and facts["intent"] is None and facts["topic"] == "cards"
    assert 0 <= facts["waiting_s"] < 10
    explanation = offer["explanation"]
    assert explanation["winner"]["name"] == "Emma Lau"
    assert {c["name"] for c in explanation["candidates"]} == {"Emma Lau", "Ken Ho"}

    accepted = await first.request("offer.accept", contact_id=contact_id)
    assert accepted["facts"]["customer_name"] == "Mei Chan" and accepted["facts"]["vip"]
    pushed = await first.wait_for("session.state", contact_id=contact_id, state="connected")
    assert pushed["facts"]["customer_name"] == "Mei Chan" and pushed["advisor_name"] == "Emma Lau"
    told = await customer.wait_for("session.state", contact_id=contact_id, state="connected")
    assert told["advisor_name"] == "Emma Lau"
    assert told.get("facts") is None  # the facts are the advisor's

    await first.request("chat.send", contact_id=contact_id, text="Hello Mei")
    line = await customer.wait_for("chat.message", contact_id=contact_id, sender="advisor")
    assert line["sender_name"] == "Emma Lau" and line["sender_ref"] == f"user:{best.id}"
    await customer.request("chat.send", contact_id=contact_id, text="hi")
    mine = await first.wait_for("chat.message", contact_id=contact_id, sender="customer")
    assert mine.get("sender_ref") is None and mine.get("sender_name") is None

    # an advisor who reconnects gets the facts again with the contact; so does the customer's name
    await first.close()
    again = await clients(username=best.username)
    resumed = await again.wait_for("session.state", contact_id=contact_id, reason="resumed")
    assert resumed["facts"]["customer_name"] == "Mei Chan" and resumed["advisor_name"] == "Emma Lau"
    replayed = await again.wait_for("chat.message", contact_id=contact_id, sender="advisor")
    assert replayed["sender_name"] == "Emma Lau"


async def test_a_bot_handoff_raises_priority_without_making_a_guest_vip(
    server, clients, advisor_factory
):
    advisor_user = await advisor_factory()
    advisor = await clients(username=advisor_user.username)
    await advisor.request("agent.status", status="available")
    customer = await clients(guest=True)
    svc = server.app[appkeys.CONTACTS]
    identity = Identity(ref=customer.welcome["user"], role=Role.CUSTOMER, display_name="Guest")
    contact = await svc.start(
        identity, channels=[Channel.TEXT], language="en", topic="cards", state=ContactState.BOT
    )
    await svc.handoff_to_queue(
        contact.id, actor="bot", language="en", skills={"cards": 2}, priority=5,
        data={"intent": "report_lost_card", "reason": "intent"},
    )
    offer = await advisor.wait_for("offer", contact_id=contact.id)
    assert offer["priority"] == 5
    facts = offer["facts"]
    assert facts["vip"] is False and facts["guest"] is True and facts["priority"] == 5
    assert facts["intent"] == "report_lost_card"


async def test_after_a_transfer_each_line_names_its_advisor(server, clients, advisor_factory):
    cards = await advisor_factory(display_name="Emma Lau", skills={"cards": 4})
    loans = await advisor_factory(display_name="Ken Ho", skills={"loans": 4})
    first = await clients(username=cards.username)
    await first.request("agent.status", status="available")
    customer = await clients(guest=True)
    contact_id = (
        await customer.request(
            "session.start", channels=["text"], language="en", topic="cards", skip_bot=True
        )
    )["contact_id"]
    await first.wait_for("offer", contact_id=contact_id)
    await first.request("offer.accept", contact_id=contact_id)
    await first.request("chat.send", contact_id=contact_id, text="passing you on")
    await first.request(
        "session.transfer", contact_id=contact_id, skills={"loans": 3}, queue_anyway=True
    )
    second = await clients(username=loans.username)
    await second.request("agent.status", status="available")
    offer = await second.wait_for("offer", contact_id=contact_id)
    [line] = [m for m in offer["transcript"] if m["sender"] == "advisor"]
    assert line["sender_name"] == "Emma Lau" and line["sender_ref"] == f"user:{cards.id}"
    accepted = await second.request("offer.accept", contact_id=contact_id)
    assert accepted["transcript"][0]["sender_name"] == "Emma Lau"
    await customer.wait_for("session.state", contact_id=contact_id, advisor_name="Emma Lau")
    await customer.wait_for("session.state", contact_id=contact_id, reason="transferred")
    told = await customer.wait_for("session.state", contact_id=contact_id, state="connected")
    assert told["advisor_name"] == "Ken Ho"
