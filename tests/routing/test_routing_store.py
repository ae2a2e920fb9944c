"""The Redis store, one behaviour at a time, on a real Redis with a controlled clock."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from routing.errors import (
    ContactExistsError,
    InvalidStateError,
    OfferExpiredError,
    UnknownAgentError,
    UnknownContactError,
    UnsupportedLanguageError,
)
from routing.events import read_all
from routing.models import (
    AgentProfile,
    AgentState,
    Channel,
    ContactRequest,
    ContactState,
    EventType,
)
from routing.policy import Policy, parse_policy
from routing.store import RouterStore

T0 = 1_000_000.0


async def add_agent(
    store: RouterStore,
    aid: str,
    skills: dict[str, int],
    *,
    langs: set[str] | None = None,
    now: float = T0,
    available: bool = True,
    **capacity: int,
) -> None:
    await store.upsert_agent(
        AgentProfile(
            id=aid,
            languages=frozenset(langs or {"en"}),
            skills=skills,
            capacity={Channel(k): v for k, v in capacity.items()} or None,
        ),
        now=now,
    )
    if available:
        await store.set_agent_state(aid, AgentState.AVAILABLE, now=now)


def text(cid: str, skills: dict[str, int] | None = None, **kw: object) -> ContactRequest:
    return ContactRequest(id=cid, channel=Channel.TEXT, language="en", skills=skills or {}, **kw)  # type: ignore[arg-type]


async def test_new_contact_goes_to_best_fit_then_longest_idle(store: RouterStore) -> None:
    await add_agent(store, "a-low", {"cards": 3}, now=T0)
    await add_agent(store, "a-high-recent", {"cards": 5}, now=T0 + 5)
    await add_agent(store, "a-high-idle", {"cards": 5}, now=T0 + 1)
    offer = await store.enqueue(text("c1", {"cards": 3}), now=T0 + 10)
    assert offer is not None and offer.agent_id == "a-high-idle"
    assert offer.deadline == T0 + 10 + 20
    explanation = offer.explanation
    assert explanation is not None and explanation.ring == 0
    assert explanation.winner.agent_id == "a-high-idle" and explanation.winner.fit_required == 5
    assert [c.agent_id for c in explanation.candidates][:2] == ["a-high-idle", "a-high-recent"]
    status = await store.contact_status("c1")
    assert status.state == ContactState.OFFERED and status.agent_id == "a-high-idle"
    assert (await store.agent_status("a-high-idle")).state == AgentState.BUSY


async def test_language_is_never_relaxed_and_contacts_wait(store: RouterStore) -> None:
    await add_agent(store, "a-en", {"cards": 5}, langs={"en"})
    zh = ContactRequest(id="c-zh", channel=Channel.TEXT, language="zh", skills={"cards": 1})
    assert await store.enqueue(zh, now=T0) is None
    await store.process_due(now=T0 + 1000)  # every ring passed
    assert (await store.contact_status("c-zh")).state == ContactState.QUEUED
    await add_agent(store, "a-zh", {"cards": 1}, langs={"zh"}, now=T0 + 1001)
    assert (await store.contact_status("c-zh")).agent_id == "a-zh"
    with pytest.raises(UnsupportedLanguageError):
        await store.enqueue(ContactRequest(id="c-fr", channel=Channel.TEXT, language="fr"), now=T0)


async def test_aging_rings_relax_skills_over_time(store: RouterStore) -> None:
    await add_agent(store, "a", {"cards": 2, "fx": 1})
    req = text("c", {"cards": 4}, optional_skills={"loans": 1})
    assert await store.enqueue(req, now=T0) is None
    await store.process_due(now=T0 + 29)
    assert (await store.contact_status("c")).state == ContactState.QUEUED
    await store.process_due(now=T0 + 31)  # ring 1: cards >= 2, but loans still required
    assert (await store.contact_status("c")).state == ContactState.QUEUED
    await store.process_due(now=T0 + 91)  # ring 2: optional skills dropped
    status = await store.contact_status("c")
    assert status.state == ContactState.OFFERED and status.agent_id == "a"
    events = [e for e in await read_all(store.redis) if e.type == EventType.OFFER_CREATED]
    assert events[-1].explanation is not None and events[-1].explanation.ring == 2


async def test_agent_freeing_up_takes_highest_priority_then_longest_waiting(
    store: RouterStore,
) -> None:
    await add_agent(store, "a", {"cards": 3}, available=False)
    await store.enqueue(text("c-old", {"cards": 1}), now=T0)
    await store.enqueue(text("c-new", {"cards": 1}), now=T0 + 1)
    await store.enqueue(text("c-vip", {"cards": 1}, vip=True), now=T0 + 2)
    await store.enqueue(text("c-other", {"fx": 1}), now=T0 - 10)
    await store.set_agent_state("a", AgentState.AVAILABLE, now=T0 + 3)
    status = await store.agent_status("a")
    assert status.offered == {"c-vip", "c-old", "c-new"}  # text capacity 3, in that order
    assert (await store.contact_status("c-other")).state == ContactState.QUEUED
    events = [e.contact_id for e in await read_all(store.redis) if e.type == "offer_created"]
    assert events == ["c-vip", "c-old", "c-new"]


async def test_accept_is_idempotent_and_records_service_level(store: RouterStore) -> None:
    await add_agent(store, "a", {})
    await store.enqueue(text("c"), now=T0)
    first = await store.accept("c", "a", now=T0 + 5)
    again = await store.accept("c", "a", now=T0 + 6)
    assert first == again and first.accepted_at == T0 + 5
    assert (await store.contact_status("c")).state == ContactState.ASSIGNED
    with pytest.raises(InvalidStateError) as info:
        await store.accept("c", "someone-else", now=T0 + 6)
    assert info.value.state == "assigned" and "assigned" in str(info.value)
    snap = await store.snapshot(now=T0 + 7)
    general = next(g for g in snap["groups"] if (g["language"], g["skill"]) == ("en", "general"))
    assert general["answered"] == 1 and general["service_level"] == 1.0


async def test_reject_keeps_place_in_queue(store: RouterStore) -> None:
    await store.enqueue(text("c1"), now=T0)
    await store.enqueue(text("c2"), now=T0 + 1)
    await add_agent(store, "a", {}, text=1, now=T0 + 2)
    assert (await store.contact_status("c1")).agent_id == "a"
    await store.reject("c1", "a", now=T0 + 3)
    assert await store.queue_ids("en", Channel.TEXT) == ["c1"]
    status = await store.contact_status("c1")
    assert status.enqueued_at == T0 and status.excluded_agents == {"a"}
    assert (await store.contact_status("c2")).agent_id == "a"


async def test_misses_in_a_row_set_the_agent_away(store: RouterStore, policy: Policy) -> None:
    await add_agent(store, "a", {}, text=1)
    for i in range(policy.misses_before_away):
        await store.enqueue(text(f"c{i}"), now=T0 + i)
        await store.reject(f"c{i}", "a", now=T0 + i)
    status = await store.agent_status("a")
    assert status.state == AgentState.AWAY and status.missed_offers == 3
    assert await store.enqueue(text("c-next"), now=T0 + 10) is None
    await store.set_agent_state("a", AgentState.AVAILABLE, now=T0 + 11)
    status = await store.agent_status("a")
    assert status.missed_offers == 0 and status.offered == {"c-next"}


async def test_offer_expiry_happens_once_and_requeues(store: RouterStore) -> None:
    await add_agent(store, "a", {})
    await store.enqueue(text("c"), now=T0)
    assert await store.process_due(now=T0 + 19) == 0
    assert await store.process_due(now=T0 + 20) >= 1
    status = await store.contact_status("c")
    assert status.state == ContactState.QUEUED and status.excluded_agents == {"a"}
    assert await store.process_due(now=T0 + 20) == 0
    types = [e.type for e in await read_all(store.redis)]
    assert types.count(EventType.OFFER_EXPIRED) == 1


async def test_accept_after_deadline_expires_instead(store: RouterStore) -> None:
    await add_agent(store, "a", {})
    await store.enqueue(text("c"), now=T0)
    with pytest.raises(OfferExpiredError):
        await store.accept("c", "a", now=T0 + 21)
    assert (await store.contact_status("c")).state == ContactState.QUEUED
    assert (await store.agent_status("a")).missed_offers == 1


async def test_going_offline_or_away_releases_open_offers_at_once(store: RouterStore) -> None:
    await add_agent(store, "a", {})
    await add_agent(store, "b", {}, available=False)
    await store.enqueue(text("c1"), now=T0)
    await store.enqueue(text("c2"), now=T0)
    await store.accept("c2", "a", now=T0 + 1)
    await store.set_agent_state("a", AgentState.AWAY, now=T0 + 2)
    assert (await store.contact_status("c1")).state == ContactState.QUEUED
    assert (await store.contact_status("c2")).state == ContactState.ASSIGNED  # kept
    await store.set_agent_state("b", AgentState.AVAILABLE, now=T0 + 3)
    assert (await store.contact_status("c1")).agent_id == "b"
    await store.set_agent_state("b", AgentState.OFFLINE, now=T0 + 4)
    assert (await store.contact_status("c1")).state == ContactState.QUEUED
    assert (await store.agent_status("b")).load[Channel.TEXT] == 0
    with pytest.raises(InvalidStateError):
        await store.set_agent_state("b", AgentState.BUSY, now=T0 + 5)
    with pytest.raises(UnknownAgentError):
        await store.set_agent_state("nobody", AgentState.AVAILABLE, now=T0 + 5)


async def test_complete_then_wrap_up_then_available(store: RouterStore) -> None:
    await add_agent(store, "a", {}, text=1)
    await store.enqueue(text("c1"), now=T0)
    await store.accept("c1", "a", now=T0 + 1)
    await store.enqueue(text("c2"), now=T0 + 2)  # waits: a is full
    await store.complete("c1", now=T0 + 61)
    status = await store.agent_status("a")
    assert status.state == AgentState.WRAP_UP and status.wrap_up_until == T0 + 91
    assert (await store.contact_status("c2")).state == ContactState.QUEUED
    await store.process_due(now=T0 + 91)
    assert (await store.contact_status("c2")).agent_id == "a"
    await store.accept("c2", "a", now=T0 + 92)
    await store.complete("c2", now=T0 + 100)
    assert await store.wrapup_done("a", now=T0 + 101) == AgentState.AVAILABLE
    position = await store.position("c2", now=T0 + 102)
    assert position.position == 0  # not waiting


async def test_voice_blocks_new_text_and_frees_it_after(store: RouterStore) -> None:
    await add_agent(store, "a", {})
    voice = ContactRequest(id="v", channel=Channel.VOICE, language="en")
    assert await store.enqueue(voice, now=T0) is not None
    assert await store.enqueue(text("t"), now=T0 + 1) is None
    await store.accept("v", "a", now=T0 + 2)
    await store.complete("v", now=T0 + 3)
    await store.wrapup_done("a", now=T0 + 4)
    assert (await store.contact_status("t")).agent_id == "a"


async def test_cancel_removes_the_contact_wherever_it_is(store: RouterStore) -> None:
    await add_agent(store, "a", {}, text=2)
    await store.enqueue(text("offered"), now=T0)
    await store.enqueue(text("assigned"), now=T0)
    await store.accept("assigned", "a", now=T0)
    await store.enqueue(text("queued"), now=T0)
    for cid in ("queued", "offered", "assigned"):
        await store.cancel(cid, now=T0 + 1)
        assert (await store.contact_status(cid)).state == ContactState.CANCELLED
    assert await store.queue_ids("en", Channel.TEXT) == []
    status = await store.agent_status("a")
    assert status.offered == set() and status.assigned == set()
    assert status.state == AgentState.WRAP_UP
    await store.cancel("queued", now=T0 + 2)  # idempotent
    with pytest.raises(UnknownContactError):
        await store.cancel("never", now=T0)
    with pytest.raises(ContactExistsError):
        await store.enqueue(text("c-dup"), now=T0 + 3)
        await store.enqueue(text("c-dup"), now=T0 + 3)


async def test_transfer_keeps_enqueue_time_and_excludes_the_agent(store: RouterStore) -> None:
    await add_agent(store, "a", {"cards": 3, "fx": 3})
    await store.enqueue(text("c", {"cards": 1}), now=T0)
    await store.accept("c", "a", now=T0 + 5)
    await store.enqueue(text("later", {"fx": 1}), now=T0 + 6)
    await add_agent(store, "fx-expert", {"fx": 5}, available=False, now=T0 + 7)
    await store.transfer("c", skills={"fx": 4}, now=T0 + 8)
    status = await store.contact_status("c")
    assert status.state == ContactState.QUEUED and status.skills == {"fx": 4}
    assert status.enqueued_at == T0 and status.excluded_agents == {"a"}
    await store.set_agent_state("fx-expert", AgentState.AVAILABLE, now=T0 + 9)
    # the transferred contact is older than "later", so it is served first
    expert = await store.agent_status("fx-expert")
    assert "c" in expert.offered
    zh = await store.transfer("later", skills={}, language="zh", now=T0 + 10)
    assert zh is None and (await store.contact_status("later")).language == "zh"


async def test_requeue_front_puts_the_contact_ahead(store: RouterStore) -> None:
    await add_agent(store, "a", {}, text=1)
    await store.enqueue(text("c1"), now=T0)
    await store.accept("c1", "a", now=T0 + 1)
    await store.enqueue(text("c2"), now=T0 + 2)
    await store.enqueue(text("c3", priority=3), now=T0 + 3)
    await store.requeue_front("c1", now=T0 + 4)
    assert (await store.queue_ids("en", Channel.TEXT))[0] == "c1"
    assert (await store.contact_status("c1")).excluded_agents == {"a"}


async def test_position_and_expected_wait(store: RouterStore, policy: Policy) -> None:
    await add_agent(store, "busy", {"cards": 3}, text=1)
    await store.enqueue(text("c0", {"cards": 1}), now=T0)
    await store.accept("c0", "busy", now=T0 + 1)
    await store.complete("c0", now=T0 + 121)  # handle time 120 s
    await store.set_agent_state("busy", AgentState.AWAY, now=T0 + 122)
    await add_agent(store, "b", {"cards": 3}, text=1, now=T0 + 122)
    await store.enqueue(text("c1", {"cards": 1}), now=T0 + 123)
    await store.accept("c1", "b", now=T0 + 124)
    for i in (2, 3, 4):
        await store.enqueue(text(f"c{i}", {"cards": 1}), now=T0 + 125 + i)
    pos = await store.position("c3", now=T0 + 130)
    # EWT = position x AHT / (eligible agents x text concurrency 3)
    assert pos.position == 2 and pos.aht_s == 120.0 and pos.eligible_agents == 1
    assert pos.ewt_s == pytest.approx(2 * 120.0 / (1 * 3))


async def test_snapshot_shows_waiting_and_agents_by_state(store: RouterStore) -> None:
    await add_agent(store, "a", {"cards": 3}, available=False)
    await add_agent(store, "b", {"fx": 3})
    await store.enqueue(text("c1", {"cards": 1}), now=T0)
    snap = await store.snapshot(now=T0 + 42)
    cards = next(g for g in snap["groups"] if (g["language"], g["skill"]) == ("en", "cards"))
    assert cards["waiting"] == 1 and cards["longest_wait_s"] == 42.0
    assert cards["agents"]["offline"] == 1
    assert snap["agents"]["available"] == 1 and snap["waiting"] == 1


async def test_restart_resumes_and_expires_offers_missed_while_down(
    redis_client: aioredis.Redis, policy: Policy
) -> None:
    first = RouterStore(redis_client, policy)
    await add_agent(first, "a", {})
    await first.enqueue(text("c"), now=T0)
    del first  # every instance is gone; state lives in Redis only
    second = RouterStore(redis_client, policy)
    assert (await second.contact_status("c")).state == ContactState.OFFERED
    assert await second.process_due(now=T0 + 3600) >= 1
    # nobody could have accepted it: released without a miss and offered again
    status = await second.contact_status("c")
    assert status.state == ContactState.OFFERED and status.deadline == T0 + 3600 + policy.offer_timeout_s
    assert (await second.agent_status("a")).missed_offers == 0


async def test_completed_contacts_are_purged_after_retention(store: RouterStore) -> None:
    await add_agent(store, "a", {})
    await store.enqueue(text("c"), now=T0)
    await store.accept("c", "a", now=T0)
    await store.complete("c", now=T0 + 1)
    await store.process_due(now=T0 + 1 + store.policy.retain_done_s)
    with pytest.raises(UnknownContactError):
        await store.contact_status("c")


async def test_events_explain_each_assignment(store: RouterStore) -> None:
    await add_agent(store, "a", {"cards": 4})
    await store.enqueue(text("c", {"cards": 2}), now=T0)
    await store.accept("c", "a", now=T0 + 1)
    events = await read_all(store.redis)
    types = [e.type for e in events]
    for expected in (
        EventType.AGENT_STATE_CHANGED,
        EventType.CONTACT_QUEUED,
        EventType.OFFER_CREATED,
        EventType.OFFER_ACCEPTED,
        EventType.CONTACT_ASSIGNED,
    ):
        assert expected in types
    assigned = next(e for e in events if e.type == EventType.CONTACT_ASSIGNED)
    assert assigned.contact_id == "c" and assigned.agent_id == "a" and assigned.time == T0 + 1
    assert assigned.explanation is not None
    assert assigned.explanation.winner.fit_required == 4
    assert assigned.explanation.considered == 1 and assigned.explanation.ring == 0


async def test_rechecks_widen_the_window_so_no_eligible_agent_stays_unseen(
    redis_client: aioredis.Redis,
) -> None:
    policy = parse_policy({"languages": ["en"], "candidate_window": 2, "recheck_s": 5})
    narrow = RouterStore(redis_client, policy)
    for i in range(6):  # the best on the primary skill, but without the second one
        await add_agent(narrow, f"strong{i}", {"cards": 5}, now=T0 + i)
    await add_agent(narrow, "fits", {"cards": 3, "fx": 1}, now=T0 + 10)
    assert await narrow.enqueue(text("c", {"cards": 3, "fx": 1}), now=T0 + 20) is None
    waited = T0 + 20
    for _ in range(4):  # window 4, 8, ...: found within a few re-checks
        waited += policy.recheck_s
        await narrow.process_due(now=waited)
    assert (await narrow.contact_status("c")).agent_id == "fits"
