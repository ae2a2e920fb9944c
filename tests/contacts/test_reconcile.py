"""Reconciliation brings the database, the router and live presence back in line."""

from __future__ import annotations

from datetime import timedelta

from contact_center import appkeys, redis_keys
from contact_center.contacts.core import now_utc
from contact_center.contacts.states import ContactState
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, Role
from contact_center.identity.auth import Identity
from routing.models import AgentProfile, AgentState, Channel, ContactRequest
from routing.models import ContactState as RouterState
from tests.helpers import eventually


def _contact(ref: str, state: ContactState, **fields: object) -> Contact:
    return Contact(
        customer_ref=ref, customer_name="Guest", channels=["text"], language="en",
        skills={"general": 1}, state=state.value, created_at=now_utc() - timedelta(minutes=1),
        **fields,  # type: ignore[arg-type]
    )


async def test_reconcile_repairs_what_a_crash_left(server, advisor_factory, redis_client):
    app = server.app
    svc, reconciler, router = app[appkeys.CONTACTS], app[appkeys.RECONCILER], app[appkeys.ROUTER]
    user = await advisor_factory(skills={"general": 3})
    agent = str(user.id)
    lost = _contact("guest:lost-by-redis", ContactState.QUEUED)  # Redis was down at its start
    done = _contact("guest:done", ContactState.CONNECTED, advisor_id=user.id)  # router finished
    alone = _contact("guest:gone", ContactState.QUEUED)  # its instance died, nobody took over
    async with transaction(svc.db) as session:
        for c in (lost, done, alone):
            session.add(c)
    await svc.mark_present(Identity(ref=lost.customer_ref, role=Role.CUSTOMER, display_name="G"))
    await svc.mark_present(Identity(ref=done.customer_ref, role=Role.CUSTOMER, display_name="G"))
    await router.upsert_agent(AgentProfile(id=agent, languages=frozenset({"en"}),
                                           skills={"general": 3}, capacity={Channel.TEXT: 3}))
    await router.set_agent_state(agent, AgentState.AVAILABLE)
    await router.enqueue(ContactRequest(id=done.id, channel=Channel.TEXT, language="en",
                                        skills={"general": 1}))
    await router.accept(done.id, agent)
    await router.complete(done.id)
    # the advisor, available to the router, is connected nowhere: offers to them would expire

    await eventually(lambda: _not_locked(redis_client))
    repaired = await reconciler.run()

    assert repaired["enqueued"] == 1 and repaired["wrap_up"] == 1
    assert repaired["advisor_offline"] == 1 and repaired["customer_grace"] >= 1
    assert (await router.contact_status(lost.id)).state is RouterState.QUEUED
    assert (await router.agent_status(agent)).state is AgentState.OFFLINE
    grace = {str(m) for m in await redis_client.zrange(redis_keys.GRACE, 0, -1)}
    assert redis_keys.grace_member("customer", alone.id) in grace
    assert redis_keys.grace_member("customer", lost.id) not in grace
    async with transaction(svc.db) as session:
        assert (await session.get(Contact, done.id)).state == ContactState.WRAP_UP  # type: ignore[union-attr]
    # a second pass finds the wrap-up of a gone advisor over, and nothing else to do
    await svc.mark_absent(Identity(ref=lost.customer_ref, role=Role.CUSTOMER, display_name="G"))
    again = await reconciler.run()
    assert again.get("ended") == 1 and "enqueued" not in again


async def _not_locked(redis_client) -> bool:  # type: ignore[no-untyped-def]
    return not await redis_client.exists(redis_keys.RECONCILE_LOCK)
