"""Exclusions end: a contact every eligible agent missed once is offered again; its expected
wait says so meanwhile, and the supervisor sees it at risk. Offers that expired while nobody
could act (Redis down) are no agent's miss."""

from __future__ import annotations

from routing.models import AgentProfile, AgentState, Channel, ContactRequest, ContactState
from routing.store import RouterStore

T0 = 1_000_000.0


async def _agent(store: RouterStore, agent_id: str, now: float) -> None:
    await store.upsert_agent(
        AgentProfile(id=agent_id, languages=frozenset({"en"}), skills={"general": 3},
                     capacity={Channel.TEXT: 3}),
        now=now,
    )
    await store.set_agent_state(agent_id, AgentState.AVAILABLE, now=now)


async def test_a_contact_both_advisors_missed_is_offered_again_and_is_at_risk_meanwhile(store):
    timeout, ttl = store.policy.offer_timeout_s, store.policy.exclusion_s
    await _agent(store, "a", T0)
    await _agent(store, "b", T0 + 1)  # "a" idles longer: offered first
    offer = await store.enqueue(
        ContactRequest(id="c1", channel=Channel.TEXT, language="en", skills={"general": 1}),
        now=T0 + 2,
    )
    assert offer is not None and offer.agent_id == "a"
    await store.reject("c1", "a", now=T0 + 3)  # "a" said no: offered to "b"
    status = await store.contact_status("c1")
    assert status.state is ContactState.OFFERED and status.agent_id == "b"
    expired_at = T0 + 3 + timeout + 0.1
    assert await store.process_due(now=expired_at) >= 1  # "b" let it expire
    status = await store.contact_status("c1")
    assert status.state is ContactState.QUEUED

    # both excluded: the estimate waits for the first exclusion to end, the supervisor sees it
    position = await store.position("c1", now=expired_at + 1)
    assert position.at_risk and position.eligible_agents == 0 and position.excluded_count == 2
    assert position.ewt_s >= (T0 + 3 + ttl) - (expired_at + 1)
    snapshot = await store.snapshot(now=expired_at + 1)
    [risk] = snapshot["at_risk"]
    assert risk["contact_id"] == "c1" and risk["reason"] == "all_excluded"
    assert risk["excluded_until"] == T0 + 3 + ttl

    # "a"'s exclusion ends: the contact is offered to them again by the re-check then due
    await store.process_due(now=T0 + 3 + ttl + 0.01)
    status = await store.contact_status("c1")
    assert status.state is ContactState.OFFERED and status.agent_id == "a"
    assert (await store.snapshot(now=T0 + 3 + ttl + 0.02))["at_risk"] == []


async def test_a_contact_nobody_can_take_is_at_risk(store):
    await store.enqueue(
        ContactRequest(id="c2", channel=Channel.TEXT, language="en", skills={"general": 1}),
        now=T0,
    )
    [risk] = (await store.snapshot(now=T0 + 5))["at_risk"]
    assert risk["reason"] == "no_agent" and risk["waited_s"] == 5.0
    assert (await store.position("c2", now=T0 + 5)).at_risk


async def test_an_offer_that_expired_while_redis_was_down_is_no_miss(store):
    timeout, late = store.policy.offer_timeout_s, store.policy.late_expiry_s
    await _agent(store, "a", T0)
    await store.enqueue(
        ContactRequest(id="c3", channel=Channel.TEXT, language="en", skills={"general": 1}),
        now=T0 + 1,
    )
    # nothing ran for a while after the deadline (Redis was down): released, offered again
    await store.process_due(now=T0 + 1 + timeout + late + 10)
    status = await store.contact_status("c3")
    assert status.state is ContactState.OFFERED and status.agent_id == "a"
    assert "a" not in status.excluded_agents
    assert (await store.agent_status("a")).missed_offers == 0
    # an expiry handled on time is a miss
    await store.process_due(now=T0 + 1 + 2 * timeout + late + 10.1)
    assert (await store.agent_status("a")).missed_offers == 1
