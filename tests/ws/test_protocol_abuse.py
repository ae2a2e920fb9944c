"""Bad input over the WebSocket: clear errors, the connection and other sessions survive."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import AuditLog
from contact_center.protocol import MAX_FRAME_BYTES
from contact_center.server.app import create_app
from contact_center.tools.wsclient import RequestFailed, SignallingClient

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
TYPES = [
    "hello", "session.start", "session.resume", "chat.send", "chat.typing", "rtc.offer",
    "rtc.candidate", "session.upgrade", "session.end", "agent.status", "offer.accept",
    "offer.reject", "session.transfer", "wrapup.done", "nonsense", "",
]
frames = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES)},
        optional={
            "v": json_values, "id": json_values, "contact_id": json_values, "text": json_values,
            "channels": json_values, "language": json_values, "status": json_values,
            "skills": json_values, "sdp": json_values,
        },
    ).map(json.dumps),
)


async def test_random_malformed_frames_only_get_errors(server, clients):
    bystander = await clients(guest=True)
    started = await bystander.request("session.start", channels=["text"], language="en", skip_bot=True)
    attacker = await clients(guest=True)
    assert attacker.ws is not None
    sent = 0

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(frame=frames)
    def collect(frame: str) -> None:
        batch.append(frame)

    batch: list[str] = []
    collect()
    for frame in batch:
        await attacker.send_raw(frame)
        sent += 1
        if sent % 200 == 0:
            await asyncio.sleep(0.5)  # stay under the rate limit: this test is about content
    # the connection is still usable: a request still gets its answer
    try:
        await attacker.request("chat.typing", contact_id="nope")
    except RequestFailed as exc:
        assert exc.code == "forbidden"
    kinds = {m["type"] for m in attacker.seen}
    assert kinds <= {"error", "ack", "session.state", "welcome", "queue.position"}, kinds
    errors = [m for m in attacker.seen if m["type"] == "error"]
    assert len(errors) >= len(batch) // 2
    assert all(e["code"] and e["message"] for e in errors)
    # the other customer's session is untouched
    await bystander.request("chat.send", contact_id=started["contact_id"], text="still fine")
    assert (await bystander.wait_for("chat.message"))["text"] == "still fine"


async def test_specific_errors_are_clear(server, clients):
    client = await clients(guest=True)
    cases = [
        ("{not json", "bad_json"),
        (json.dumps({"v": 1, "type": "teleport", "id": "1"}), "unknown_type"),
        (json.dumps({"v": 1, "type": "chat.send", "id": "2", "contact_id": "x"}), "bad_field"),
        (json.dumps({"v": 1, "type": "agent.status", "id": "3", "status": "available"}), "forbidden"),
        (json.dumps({"v": 2, "type": "hello", "id": "4"}), "bad_field"),
        (json.dumps({"v": 1, "type": "chat.send", "id": "5", "contact_id": "c", "text": "x" * (MAX_FRAME_BYTES + 10)}), "frame_too_large"),
    ]
    for frame, code in cases:
        await client.send_raw(frame)
        error = await client.wait_for("error", code=code)
        assert error["message"]
    await client.send_raw(json.dumps({"v": 1, "type": "session.end", "id": "9", "contact_id": "someone-else"}))
    assert (await client.wait_for("error", ref="9"))["code"] == "forbidden"


async def test_touching_another_customers_contact_is_refused_and_audited(server, clients):
    owner = await clients(guest=True)
    started = await owner.request("session.start", channels=["text"], language="en", skip_bot=True)
    intruder = await clients(guest=True)
    for kind, fields in [
        ("chat.send", {"text": "hi"}),
        ("session.end", {}),
        ("rtc.offer", {"sdp": "v=0"}),
    ]:
        try:
            await intruder.request(kind, contact_id=started["contact_id"], **fields)
        except RequestFailed as exc:
            assert exc.code == "forbidden"
        else:
            raise AssertionError(f"{kind} on someone else's contact was accepted")
    async with transaction(server.app[appkeys.DB]) as session:
        rows = (
            await session.exec(select(AuditLog).where(AuditLog.target == f"contact:{started['contact_id']}"))
        ).all()
    assert len(rows) == 3 and {r.action for r in rows} == {"access.denied"}
    assert all(r.actor == intruder.welcome["user"] for r in rows)


@pytest.fixture
async def strict_server(fast_settings, redis_client):  # type: ignore[no-untyped-def]
    """A server with the production rate limit (20 messages/s, bursts of 40)."""
    settings = fast_settings.model_copy(update={"ws_rate_per_s": 20.0, "ws_burst": 40})
    srv = TestServer(create_app(settings), host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


async def test_flood_is_refused_then_disconnected_and_others_are_unaffected(strict_server):
    base = str(strict_server.make_url(""))
    calm, flooder = SignallingClient(base), SignallingClient(base)
    for client in (calm, flooder):
        await client.as_guest()
        await client.connect()
    try:
        frame = json.dumps({"v": 1, "type": "nonsense", "id": "f"})
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            for _ in range(400):
                await flooder.send_raw(frame)
        refused = await flooder.wait_for("error", code="rate_limited")
        assert "slow down" in refused["message"]
        last = await flooder.wait_for("error", code="rate_limited", message="too many messages: disconnecting")
        assert last
        async with asyncio.timeout(5):
            while flooder.ws is not None and not flooder.ws.closed:
                await asyncio.sleep(0.05)
        started = await calm.request("session.start", channels=["text"], language="en", skip_bot=True)
        assert started["contact_id"]
    finally:
        await calm.close()
        await flooder.close()


async def test_no_hello_no_service(server):
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(server.make_url("/ws")) as ws:
            await ws.send_str(json.dumps({"v": 1, "type": "session.start", "id": "1", "channels": ["text"]}))
            reply = json.loads((await ws.receive()).data)
            assert reply["type"] == "error" and reply["code"] == "unauthenticated"
