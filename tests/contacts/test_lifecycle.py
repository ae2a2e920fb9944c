"""A text contact from start to end through the real WebSocket, router, DB and Redis."""

from __future__ import annotations

import asyncio
import socket

import pytest
from sqlmodel import select

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import ChatMessage as ChatRow
from contact_center.db.models import ContactEvent


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

    async with transaction(server.app[appkeys.DB]) as session:
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


async def test_transfer_requeues_keeping_the_enqueue_time_for_another_skill(server, clients, advisor_factory):

    cards = await advisor_factory(skills={"cards": 4})
    loans_user = await advisor_factory(skills={"loans": 4}, languages=["en", "zh"])
    first = await clients(username=cards.username)
    await first.request("agent.status", status="available")
    customer = await clients(guest=True)
    contact_id = (await customer.request("session.start", channels=["text"], language="en", topic="cards", skip_bot=True))["contact_id"]
    await first.wait_for("offer", contact_id=contact_id)
    await first.request("offer.accept", contact_id=contact_id)
    router = server.app[appkeys.ROUTER]
    enqueued_at = (await router.contact_status(contact_id)).enqueued_at
    # Nobody with loans in Mandarin is signed in yet: the transfer must say it will wait.
    await first.request(
        "session.transfer", contact_id=contact_id, skills={"loans": 3}, language="zh",
        queue_anyway=True,
    )
    told = await customer.wait_for("session.state", contact_id=contact_id, reason="transferred")
    assert told["state"] == "queued"
    status = await router.contact_status(contact_id)
    assert status.enqueued_at == enqueued_at and status.language == "zh" and status.skills == {"loans": 3}
    second = await clients(username=loans_user.username)
    await second.request("agent.status", status="available")
    offer = await second.wait_for("offer", contact_id=contact_id)
    assert offer["language"] == "zh" and offer["skills"] == {"loans": 3}


async def test_supervisor_snapshot_needs_the_role(server, clients, advisor_factory, fast_settings):
    from contact_center.db.models import Role
    from contact_center.tools.wsclient import SignallingClient
    from tests.helpers import PASSWORD, make_user

    customer = await clients(guest=True)
    await customer.request("session.start", channels=["voice"], language="yue", skip_bot=True)
    boss = await make_user(fast_settings, Role.SUPERVISOR)
    viewer = SignallingClient(str(server.make_url("")))
    try:
        async with viewer.http.get(server.make_url("/api/supervisor/snapshot")) as resp:
            assert resp.status == 401
        await viewer.login(boss.username, PASSWORD)
        async with viewer.http.get(server.make_url("/api/supervisor/snapshot")) as resp:
            assert resp.status == 200
            snapshot = await resp.json()
        assert "yue" in str(snapshot)
        await customer.http.get(server.make_url("/"))
        async with customer.http.get(server.make_url("/api/supervisor/snapshot")) as resp:
            assert resp.status == 403
    finally:
        await viewer.close()


# the reader sends up to 2,048 lines as fast as they are answered: no rate limit in the way
@pytest.mark.settings(ws_rate_per_s=10_000.0, ws_burst=100_000)
async def test_a_client_that_does_not_read_is_disconnected_not_buffered(server, clients, fast_settings):
    import aiohttp

    reader = await clients(guest=True)
    started = await reader.request("session.start", channels=["text"], language="en", skip_bot=True)
    def small_window(addr_info: tuple) -> socket.socket:  # type: ignore[type-arg]
        # a small receive buffer, as a phone's may be: the kernel holds less of what is unread
        family, type_, proto, _, _ = addr_info
        sock = socket.socket(family, type_, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return sock

    # a second connection of the same customer that never reads what it is sent
    connector = aiohttp.TCPConnector(socket_factory=small_window)
    async with aiohttp.ClientSession(cookie_jar=reader.http.cookie_jar, connector=connector) as http:
        ws = await http.ws_connect(server.make_url("/ws"), max_msg_size=0)
        await ws.send_str('{"v":1,"type":"hello","id":"h"}')
        connections = server.app[appkeys.CONNECTIONS]
        text = "x" * 3000
        # a few lines in flight at once: the socket buffers fill sooner than one by one
        at_once = 8
        for _ in range(fast_settings.ws_send_queue * 8 // at_once):
            await asyncio.gather(*(
                reader.request("chat.send", contact_id=started["contact_id"], text=text)
                for _ in range(at_once)
            ))
            if len(connections) < 2:
                break
        assert len(connections) == 1, "the stuck connection should have been dropped"
        await ws.close()
    assert (await reader.request("chat.typing", contact_id=started["contact_id"])) == {}


async def test_queue_position_is_pushed_and_illegal_moves_name_the_current_state(server, clients):
    from contact_center.tools.wsclient import RequestFailed

    first = await clients(guest=True)
    second = await clients(guest=True)
    a = (await first.request("session.start", channels=["voice"], language="yue", skip_bot=True))["contact_id"]
    b = (await second.request("session.start", channels=["voice"], language="yue", skip_bot=True))["contact_id"]
    assert (await first.wait_for("queue.position", contact_id=a, timeout=15))["position"] == 1
    pushed = await second.wait_for("queue.position", contact_id=b, timeout=15)
    assert pushed["position"] == 2 and pushed["ewt_s"] > 0
    await first.request("session.end", contact_id=a)
    # the one ahead left: the second moves up
    assert (await second.wait_for("queue.position", contact_id=b, position=1, timeout=15))["ewt_s"] > 0
    try:
        await first.request("session.end", contact_id=a)
    except RequestFailed as exc:
        assert exc.code == "invalid_state" and "abandoned" in exc.message
    else:
        raise AssertionError("ending an abandoned contact was accepted")
    try:
        await second.request("session.upgrade", contact_id=b, channel="video")
    except RequestFailed as exc:
        assert "queued" in exc.message
    else:
        raise AssertionError("upgrading a queued contact was accepted")
