"""The advisor desktop's server side: the customer context endpoint (who may read it), wrap-up
outcomes (validated, stored on the contact, also after a transfer away), transfers nobody could
serve, the transfer picker's choices and the reason for "away after missed offers".

Real app, real Redis, the session's database (SQLite, or PostgreSQL with CC_TEST_DATABASE_URL).
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import AuditLog, ContactEvent, ContactWrapup, Role
from contact_center.tools.wsclient import RequestFailed
from tests.helpers import make_user


async def _connected(clients, advisor, *, topic: str = "cards", customer=None):  # type: ignore[no-untyped-def]
    """A customer (a new guest unless given) connected to ``advisor`` (a signalling client)."""
    customer = customer or await clients(guest=True)
    started = await customer.request(
        "session.start", channels=["text"], language="en", topic=topic, skip_bot=True
    )
    contact_id = started["contact_id"]
    await advisor.wait_for("offer", contact_id=contact_id)
    await advisor.request("offer.accept", contact_id=contact_id)
    return customer, contact_id


async def _rows(server, model, **where):  # type: ignore[no-untyped-def]
    async with transaction(server.app[appkeys.DB]) as session:
        query = select(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return list((await session.exec(query)).all())


async def _get(client, server, path: str):  # type: ignore[no-untyped-def]
    async with client.http.get(server.make_url(path)) as response:
        if response.content_type != "application/json":  # the role guard answers in text
            return response.status, await response.text()
        return response.status, await response.json()


async def test_wrapup_keeps_the_outcome_and_refuses_an_unknown_code(server, clients, advisor_factory):
    user = await advisor_factory()
    advisor = await clients(username=user.username)
    await advisor.request("agent.status", status="available")
    customer, contact_id = await _connected(clients, advisor)
    await advisor.request("session.end", contact_id=contact_id)

    with pytest.raises(RequestFailed) as refused:
        await advisor.request("wrapup.done", contact_id=contact_id, outcome="made_up")
    assert refused.value.code == "unknown_outcome" and "resolved" in refused.value.message
    assert await _rows(server, ContactWrapup, contact_id=contact_id) == []  # nothing kept

    done = await advisor.request(
        "wrapup.done", contact_id=contact_id, outcome="follow_up",
        notes="Card 4111 1111 1111 1111 to be replaced; call back Friday",
    )
    assert done == {"ended": [contact_id], "recorded": True}
    [wrapup] = await _rows(server, ContactWrapup, contact_id=contact_id)
    assert wrapup.advisor_id == user.id and wrapup.outcome == "follow_up"
    assert "4111 1111 1111 1111" not in wrapup.notes and "1111" in wrapup.notes  # masked
    # compliance sees it in the contact's events (and so its timeline)
    [event] = await _rows(server, ContactEvent, contact_id=contact_id, kind="wrapup_done")
    assert event.data["outcome"] == "follow_up" and event.to_state == "ended"
    with pytest.raises(RequestFailed) as again:
        await advisor.request("wrapup.done", contact_id=contact_id, outcome="resolved")
    assert again.value.code == "conflict"


async def test_the_advisor_who_transferred_it_wraps_up_too(server, clients, advisor_factory):
    first_user = await advisor_factory(display_name="Emma Lau", skills={"cards": 4})
    second_user = await advisor_factory(display_name="Ken Ho", skills={"loans": 4})
    first = await clients(username=first_user.username)
    second = await clients(username=second_user.username)
    await first.request("agent.status", status="available")
    customer, contact_id = await _connected(clients, first)
    await second.request("agent.status", status="available")
    await first.request(
        "session.transfer", contact_id=contact_id, skills={"loans": 2},
        note="Wants to refinance; already verified",
    )
    offer = await second.wait_for("offer", contact_id=contact_id)
    assert offer["facts"]["transfer_note"] == "Wants to refinance; already verified"
    assert offer["facts"]["transferred_by"] == "Emma Lau"
    accepted = await second.request("offer.accept", contact_id=contact_id)
    assert accepted["facts"]["transfer_note"] == "Wants to refinance; already verified"

    done = await first.request("wrapup.done", contact_id=contact_id, outcome="transferred")
    assert done == {"ended": [], "recorded": True}
    await second.request("session.end", contact_id=contact_id)
    await second.request("wrapup.done", contact_id=contact_id, outcome="resolved")
    wrapups = await _rows(server, ContactWrapup, contact_id=contact_id)
    assert [(w.advisor_id, w.outcome) for w in wrapups] == [
        (first_user.id, "transferred"), (second_user.id, "resolved"),
    ]
    [late] = await _rows(server, ContactEvent, contact_id=contact_id, kind="wrapup_recorded")
    assert late.actor == f"user:{first_user.id}" and late.data["outcome"] == "transferred"


async def test_a_transfer_nobody_could_serve_is_refused_unless_asked_to_wait(
    server, clients, advisor_factory
):
    user = await advisor_factory(skills={"cards": 4})
    advisor = await clients(username=user.username)
    await advisor.request("agent.status", status="available")
    customer, contact_id = await _connected(clients, advisor)

    status, options = await _get(
        advisor, server, f"/api/contacts/{contact_id}/transfer-options?skill=loans&level=3"
    )
    assert status == 200 and options["servable"] is False and options["now"] == []
    assert "cards" in options["skills"] and set(options["languages"]) >= {"en", "zh", "yue"}
    with pytest.raises(RequestFailed) as refused:
        await advisor.request("session.transfer", contact_id=contact_id, skills={"loans": 3})
    assert refused.value.code == "nobody_can_serve"

    helper = await advisor_factory(display_name="Loan Expert", skills={"loans": 5})
    other = await clients(username=helper.username)
    await other.request("agent.status", status="available")
    status, options = await _get(
        advisor, server, f"/api/contacts/{contact_id}/transfer-options?skill=loans&level=3"
    )
    assert options["servable"] is True and options["now"] == ["Loan Expert"]
    await advisor.request("session.transfer", contact_id=contact_id, skills={"loans": 3})
    await other.wait_for("offer", contact_id=contact_id)


async def test_the_context_is_for_its_advisor_and_supervisors_only(
    server, clients, advisor_factory, fast_settings
):
    mei = await make_user(fast_settings, Role.CUSTOMER, display_name="Mei Chan", vip=True)
    user = await advisor_factory(display_name="Emma Lau")
    advisor = await clients(username=user.username)
    await advisor.request("agent.status", status="available")
    customer = await clients(username=mei.username)
    _, earlier = await _connected(clients, advisor, customer=customer)
    await advisor.request("session.end", contact_id=earlier)
    await advisor.request(
        "wrapup.done", contact_id=earlier, outcome="callback_requested", notes="Call on Monday"
    )
    await advisor.request("agent.status", status="available")
    _, contact_id = await _connected(clients, advisor, customer=customer, topic="general")

    status, context = await _get(advisor, server, f"/api/contacts/{contact_id}/context")
    assert status == 200
    assert context["facts"]["customer_name"] == "Mei Chan" and context["facts"]["vip"] is True
    [previous] = [p for p in context["previous"] if p["contact_id"] == earlier]
    assert previous["advisors"] == ["Emma Lau"] and previous["channels"] == ["text"]
    [wrapup] = previous["wrapups"]
    assert wrapup["outcome"] == "callback_requested" and wrapup["notes"] == "Call on Monday"
    assert wrapup["advisor"] == "Emma Lau"
    assert context["bot_transcript"] == []  # it skipped the bot

    stranger_user = await advisor_factory()
    stranger = await clients(username=stranger_user.username)
    status, body = await _get(stranger, server, f"/api/contacts/{contact_id}/context")
    assert status == 403 and body["error"] == "forbidden"
    status, _ = await _get(stranger, server, f"/api/contacts/{contact_id}/transfer-options")
    assert status == 403
    denied = await _rows(server, AuditLog, actor=f"user:{stranger_user.id}", action="access.denied")
    assert {d.target for d in denied} == {f"contact:{contact_id}"}

    boss = await make_user(fast_settings, Role.SUPERVISOR)
    supervisor = await clients(username=boss.username)
    status, _ = await _get(supervisor, server, f"/api/contacts/{contact_id}/context")
    assert status == 200
    status, _ = await _get(customer, server, f"/api/contacts/{contact_id}/context")
    assert status == 403  # the customer is not staff


async def test_away_after_missed_offers_says_why(server, clients, advisor_factory):
    user = await advisor_factory()
    advisor = await clients(username=user.username)
    await advisor.request("agent.status", status="available")
    misses = server.app[appkeys.ROUTER].policy.misses_before_away
    for _ in range(misses):
        customer = await clients(guest=True)
        started = await customer.request(
            "session.start", channels=["text"], language="en", topic="cards", skip_bot=True
        )
        await advisor.wait_for("offer", contact_id=started["contact_id"])
        await advisor.request("offer.reject", contact_id=started["contact_id"])
    notice = await advisor.wait_for("agent.state", state="away")
    assert notice["reason"] == "missed_offers" and notice["missed_offers"] == misses


async def test_the_context_has_what_the_customer_told_the_bot(server, clients, advisor_factory):
    from contact_center.contacts import store
    from contact_center.contacts.states import ContactState
    from contact_center.identity.auth import Identity
    from routing.models import Channel

    user = await advisor_factory()
    advisor = await clients(username=user.username)
    await advisor.request("agent.status", status="available")
    guest = await clients(guest=True)
    svc = server.app[appkeys.CONTACTS]
    identity = Identity(ref=guest.welcome["user"], role=Role.CUSTOMER, display_name="Guest")
    contact = await svc.start(
        identity, channels=[Channel.TEXT], language="en", topic="cards", state=ContactState.BOT
    )
    lines = ((identity.ref, "customer", "I lost my card"), ("bot", "bot", "I will get you an advisor"))
    for ref, sender, text in lines:
        await store.add_chat_message(
            server.app[appkeys.DB], contact_id=contact.id, sender_ref=ref, sender_role=sender,
            text=text,
        )
    await svc.handoff_to_queue(
        contact.id, actor="bot", language="en", skills={"cards": 2}, priority=5,
        data={"intent": "report_lost_card", "reason": "intent"},
    )
    await advisor.wait_for("offer", contact_id=contact.id)
    await advisor.request("offer.accept", contact_id=contact.id)
    await advisor.request("chat.send", contact_id=contact.id, text="Hello, I can block it")
    status, context = await _get(advisor, server, f"/api/contacts/{contact.id}/context")
    assert status == 200 and context["facts"]["intent"] == "report_lost_card"
    assert [(line["sender"], line["text"]) for line in context["bot_transcript"]] == [
        ("customer", "I lost my card"), ("bot", "I will get you an advisor"),
    ]  # the advisor's own line is not the bot's part
