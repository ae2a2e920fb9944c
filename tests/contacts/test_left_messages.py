"""Nobody signed in who could serve a contact: the customer is told so (no made-up wait) and may
leave a message with a callback number, which is kept on the contact and put before the
supervisors; the contact ends."""

from __future__ import annotations

import pytest

from contact_center import appkeys
from contact_center.contacts import store
from contact_center.contacts.alarms import read_alarms
from contact_center.db.engine import transaction
from contact_center.tools.wsclient import RequestFailed


async def test_a_message_left_with_nobody_signed_in_reaches_the_supervisors(server, clients, advisor_factory):
    customer = await clients(guest=True)
    started = await customer.request("session.start", channels=["text"], language="yue", skip_bot=True)
    contact_id = started["contact_id"]
    position = await customer.wait_for("queue.position", contact_id=contact_id)
    assert position["staffed"] is False

    with pytest.raises(RequestFailed, match="callback needs a phone number"):
        await customer.request("session.leave_message", contact_id=contact_id, text="Call me", callback=True)
    stranger = await clients(guest=True)
    with pytest.raises(RequestFailed) as refused:
        await stranger.request("session.leave_message", contact_id=contact_id, text="hijack")
    assert refused.value.code in ("forbidden", "not_found")

    ack = await customer.request(
        "session.leave_message", contact_id=contact_id,
        text="My card 4111 1111 1111 1111 was swallowed by an ATM", callback=True, phone="+852 9123 4567",
    )
    assert ack == {"state": "abandoned"}
    state = await customer.wait_for("session.state", contact_id=contact_id, state="abandoned")
    assert state["reason"] == "message_left"

    async with transaction(server.app[appkeys.DB]) as session:
        lines = await store.chat_history(session, contact_id=contact_id)
        events = await store.events_of(session, contact_id=contact_id)
    assert [line.sender_role for line in lines] == ["customer"]
    assert "swallowed by an ATM" in lines[0].text and "4111 1111 1111 1111" not in lines[0].text
    left = [e for e in events if e.kind == "message_left" and e.to_state is None]  # not the end
    assert len(left) == 1 and left[0].data["callback"] is True and left[0].data["phone"] == "+852 9123 4567"
    alarms = [a for a in await read_alarms(server.app[appkeys.REDIS], count=1000) if a.contact_id == contact_id]
    assert [a.kind for a in alarms] == ["message_left"]
    assert "call back on +852 9123 4567" in alarms[0].message

    with pytest.raises(RequestFailed) as again:  # the contact is over: not twice
        await customer.request("session.leave_message", contact_id=contact_id, text="again")
    assert again.value.code == "invalid_state"


async def test_with_an_advisor_signed_in_the_wait_is_estimated(server, clients, advisor_factory):
    user = await advisor_factory(languages=["en"])
    advisor = await clients(username=user.username)
    await advisor.request("agent.status", status="available")
    first = await clients(guest=True)
    taken = await first.request("session.start", channels=["voice"], language="en", skip_bot=True)
    await advisor.wait_for("offer", contact_id=taken["contact_id"])  # the advisor's one voice slot
    customer = await clients(guest=True)
    started = await customer.request("session.start", channels=["voice"], language="en", skip_bot=True)
    position = await customer.wait_for("queue.position", contact_id=started["contact_id"])
    assert position["staffed"] is True and position["ewt_s"] > 0
