"""The supervisor feed (SSE pushed on router events) and the supervisor's actions."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlmodel import select

from contact_center import appkeys, redis_keys
from contact_center.db.engine import transaction
from contact_center.db.models import AuditLog, Contact, Role
from contact_center.views.supervisor import TICK_S, stranded_reason
from routing.models import AgentProfile, AgentState, Channel, ContactRequest
from routing.policy import load_policy
from routing.scoring import AgentView, ContactView
from tests.helpers import login, make_user
from tests.redis_servers import ON_CLUSTER_TOO

POLICY = load_policy(None)


def _agent(**kw: Any) -> AgentView:
    kw.setdefault("languages", frozenset({"en"}))
    kw.setdefault("skills", {"general": 3})
    kw.setdefault("capacity", {"text": 3, "voice": 1, "video": 1})
    kw.setdefault("presence", "available")
    return AgentView(id=kw.pop("id", "1"), **kw)


def _contact(**kw: Any) -> ContactView:
    t = kw.pop("t", 1000.0)
    base: dict[str, Any] = dict(id="c1", channel="text", language="en", req={"general": 1}, opt={},
                                priority=0, vip=False, enqueued_at=t, ring_since=t, score=t,
                                state="queued", excluded=set(), excluded_at={})
    return ContactView(**{**base, **kw})


def test_stranded_when_an_able_advisor_sits_free_or_nobody_available_can_take_it():
    able = _agent()
    assert stranded_reason(POLICY, _contact(), [able], {}, now=1002.0) is None  # just queued
    assert stranded_reason(POLICY, _contact(), [able], {}, now=1010.0) == "not_offered"
    cantonese = _contact(language="yue")
    risk = {"c1": {"reason": "no_agent"}}
    assert stranded_reason(POLICY, cantonese, [able], risk, now=1010.0) == "no_agent"
    away = _agent(presence="away")
    assert stranded_reason(POLICY, cantonese, [away], risk, now=1010.0) is None  # nobody available
    assert stranded_reason(POLICY, _contact(state="offered"), [able], {}, now=1010.0) is None


async def _supervisor(client, settings):  # type: ignore[no-untyped-def]
    sup = await make_user(settings, Role.SUPERVISOR)
    assert (await login(client, sup.username)).status == 303
    html = await (await client.get("/supervisor")).text()
    token = html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    return {"X-CSRF-Token": token}


async def _events(response, until, seconds: float = 10.0):  # type: ignore[no-untyped-def]
    """Read SSE events until ``until(name, data)`` is true; returns the (name, data) seen."""
    seen: list[tuple[str, Any]] = []
    name = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
            seen.append((name, data))
            if until(name, data):
                return seen
    raise AssertionError(f"not seen within {seconds} s: {[n for n, _ in seen]}")


async def _advisor(client, settings, **fields):  # type: ignore[no-untyped-def]
    fields.setdefault("skills", {"general": 3})
    user = await make_user(settings, Role.ADVISOR, display_name=fields.pop("name", "Emma Lau"),
                           languages=["en"], **fields)
    router = client.app[appkeys.ROUTER]
    await router.upsert_agent(AgentProfile(id=str(user.id), languages=frozenset({"en"}),
                                           skills=user.skills))
    await router.set_agent_state(str(user.id), AgentState.AVAILABLE)
    return user


@ON_CLUSTER_TOO
async def test_the_feed_pushes_advisors_by_name_and_the_waiting_list_on_router_events(client, settings):
    await _supervisor(client, settings)
    advisor = await _advisor(client, settings, skills={"general": 3})
    response = await client.get("/api/supervisor/feed")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    first = await _events(response, lambda n, d: n == "floor")
    assert first[0][0] == "history"
    floor = first[-1][1]
    row = next(a for a in floor["advisors"] if a["id"] == str(advisor.id))
    assert row["name"] == "Emma Lau" and row["state"] == "available"
    assert row["capacity"]["text"] == 3 and row["load"]["text"] == 0

    router = client.app[appkeys.ROUTER]
    started = time.monotonic()
    await router.enqueue(ContactRequest(id="c-feed", channel=Channel.TEXT, language="en",
                                        skills={"general": 1}, vip=True))
    seen = await _events(response, lambda n, d: any(w["contact_id"] == "c-feed" for w in d["waiting"]))
    assert time.monotonic() - started < 1.5  # pushed on the event, not on the next tick
    waiting = next(w for w in seen[-1][1]["waiting"] if w["contact_id"] == "c-feed")
    assert waiting["offered_to"] == "Emma Lau" and waiting["vip"] is True
    assert waiting["state"] == "offered"

    await router.enqueue(ContactRequest(id="c-yue", channel=Channel.TEXT, language="yue"))
    seen = await _events(response, lambda n, d: any(w["contact_id"] == "c-yue" for w in d["waiting"]))
    flagged = next(w for w in seen[-1][1]["waiting"] if w["contact_id"] == "c-yue")
    assert flagged["at_risk"] == "no_agent" and flagged["stranded"] == "no_agent"  # Emma is signed in
    assert seen[-1][1]["sample"]["waiting"] == 2
    response.close()


async def test_history_keeps_one_sample_per_bucket_in_redis(client, settings, redis_client):
    await _supervisor(client, settings)
    feed = client.app[appkeys.SUPERVISOR_FEED]
    frame = await feed.frame()
    await feed._keep_sample(frame["sample"])
    await feed._keep_sample(frame["sample"])  # another instance, same bucket: not kept twice
    assert await redis_client.llen(redis_keys.SUPERVISOR_HISTORY) == 1
    assert (await feed.history())[0]["waiting"] == 0


async def test_forcing_an_advisor_away_stops_offers_to_them_and_is_audited(client, settings):
    headers = await _supervisor(client, settings)
    advisor = await _advisor(client, settings)
    router = client.app[appkeys.ROUTER]
    bad = await client.post(f"/api/supervisor/advisors/{advisor.id}/state",
                            json={"state": "available"}, headers=headers)
    assert bad.status == 400
    assert (await client.post(f"/api/supervisor/advisors/{advisor.id}/state",
                              json={"state": "away"})).status == 403  # no CSRF token
    forced = await client.post(f"/api/supervisor/advisors/{advisor.id}/state",
                               json={"state": "away"}, headers=headers)
    assert (await forced.json())["state"] == "away"
    assert await router.enqueue(ContactRequest(id="c-away", channel=Channel.TEXT,
                                               language="en")) is None
    missing = await client.post("/api/supervisor/advisors/999999/state", json={"state": "away"},
                                headers=headers)
    assert missing.status == 404
    async with transaction(client.app[appkeys.DB]) as session:  # (the database is the session's)
        rows = (await session.exec(select(AuditLog).where(
            AuditLog.action == "supervisor.force_state",
            AuditLog.target == f"user:{advisor.id}"))).all()
    assert [r.detail.get("state") for r in rows] == ["away"]  # the refused request left no trace


async def test_requeue_takes_an_offered_or_connected_contact_from_its_advisor(client, settings):
    headers = await _supervisor(client, settings)
    advisor = await _advisor(client, settings)
    router = client.app[appkeys.ROUTER]
    async with transaction(client.app[appkeys.DB]) as session:
        contact = Contact(customer_ref="guest:x", customer_name="Guest", channels=["text"],
                          language="en", skills={"general": 1}, state="offered")
        session.add(contact)
    offer = await router.enqueue(ContactRequest(id=contact.id, channel=Channel.TEXT, language="en"))
    assert offer is not None and offer.agent_id == str(advisor.id)
    done = await client.post(f"/api/supervisor/contacts/{contact.id}/requeue", headers=headers)
    assert done.status == 200, await done.text()
    status = await router.contact_status(contact.id)
    assert status.state == "queued" and str(advisor.id) in status.excluded_agents
    again = await client.post(f"/api/supervisor/contacts/{contact.id}/requeue", headers=headers)
    assert again.status == 409
    assert (await client.post("/api/supervisor/contacts/nope/requeue", headers=headers)).status == 404

    other = await _advisor(client, settings, name="Ken Ho")
    assert (await router.contact_status(contact.id)).agent_id == str(other.id)
    await router.accept(contact.id, str(other.id))
    async with transaction(client.app[appkeys.DB]) as session:
        row = await session.get(Contact, contact.id)
        assert row is not None
        row.state, row.advisor_id = "connected", other.id
        session.add(row)
    done = await client.post(f"/api/supervisor/contacts/{contact.id}/requeue", headers=headers)
    assert done.status == 200, await done.text()
    async with transaction(client.app[appkeys.DB]) as session:
        row = await session.get(Contact, contact.id)
        assert row is not None and row.state == "queued" and row.advisor_id is None
        audits = (await session.exec(select(AuditLog).where(  # (the database is the session's)
            AuditLog.action == "supervisor.requeue",
            AuditLog.target == f"contact:{contact.id}"))).all()
    assert len(audits) == 2


@ON_CLUSTER_TOO
async def test_alarms_reach_the_feed_as_they_are_raised(client, settings, redis_client):
    from contact_center.contacts.alarms import raise_alarm
    from contact_center.views.supervisor import ALARMS_SHOWN

    for n in range(ALARMS_SHOWN + 3):  # raised before anyone watched: the newest are shown
        await raise_alarm(redis_client, kind="recorder_failure", at="2026-01-01T00:00:00Z",
                          instance="i-old", contact_id=f"old-{n}", message=f"old {n}")
    await _supervisor(client, settings)
    response = await client.get("/api/supervisor/feed")
    floor = (await _events(response, lambda n, d: n == "floor"))[-1][1]
    assert len(floor["alarms"]) == ALARMS_SHOWN
    assert floor["alarms"][0]["contact_id"] == f"old-{ALARMS_SHOWN + 2}"  # newest first
    assert floor["alarms_recent"] == ALARMS_SHOWN

    await _events(response, lambda n, d: n == "floor")  # a tick: the next is TICK_S away
    started = time.monotonic()
    await raise_alarm(redis_client, kind="recorder_failure", at="2026-01-01T00:00:01Z",
                      instance="i-1", contact_id="c-broken",
                      message="recording of contact c-broken: write failed: disk full",
                      detail={"stage": "write"})
    seen = await _events(response, lambda n, d: n == "floor" and d["alarms"][0]["contact_id"] == "c-broken")
    assert time.monotonic() - started < TICK_S / 2  # pushed when raised, not on the next tick
    alarm = seen[-1][1]["alarms"][0]
    assert alarm["kind"] == "recorder_failure" and alarm["detail"] == {"stage": "write"}
    assert alarm["message"].endswith("disk full") and 0 <= alarm["age_s"] < 5
    assert len(seen[-1][1]["alarms"]) == ALARMS_SHOWN
    response.close()


def test_alarm_rows_newest_first_with_their_age_and_the_last_hours_count():
    from contact_center.contacts.alarms import Alarm
    from contact_center.views.supervisor import _stream_entries, alarm_rows

    def alarm(ms: int) -> Alarm:
        return Alarm(id=f"{ms}-0", kind="recorder_failure", at="", instance="i", message=str(ms))

    now = 10_000.0
    rows, recent = alarm_rows([alarm(5_000_000), alarm(9_000_000)], now)  # 5000 s and 1000 s ago
    assert [r["message"] for r in rows] == ["9000000", "5000000"]
    assert [r["age_s"] for r in rows] == [1000.0, 5000.0] and recent == 1
    entries = [("1-0", {"a": "b"})]
    assert list(_stream_entries([["s", entries]])) == [("s", entries)]  # RESP2
    assert list(_stream_entries({"s": [entries]})) == [("s", entries)]  # RESP3
    assert list(_stream_entries(None)) == []
