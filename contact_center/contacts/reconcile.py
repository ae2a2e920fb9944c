"""Bring the database, the router and live presence back in line: at start and periodically.

Each pass is run by one instance at a time (a lock in Redis). What it repairs, contact by
contact (those younger than ``settle_s`` are left alone: they may be starting right now):

- waiting in the database, unknown to the router (Redis was down when it started): queued again
  once its customer is connected; finished in the router: abandoned;
- connected in the database, finished or unknown in the router: to wrap-up;
- in wrap-up, its advisor gone or no longer busy or wrapping up in the router: ended;
- a party connected nowhere and with no grace period running: its grace period starts;
- ended in the database but still queued, offered or held in the router: let go there.

And advisors the router takes offers for who are connected nowhere are set offline.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.core import advisor_ref, agent_id_of
from contact_center.contacts.service import ContactService
from contact_center.contacts.states import FINAL_STATES, ContactState, InvalidTransition
from contact_center.db.engine import reading
from contact_center.db.models import Contact
from contact_center.errors import Conflict
from routing.errors import UnknownAgentError, UnknownContactError
from routing.models import AgentState
from routing.models import ContactState as RouterState

log = logging.getLogger(__name__)

SETTLE_S = 10.0
LOCK_TTL_S = 120
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_FINISHED = frozenset({RouterState.COMPLETED, RouterState.CANCELLED})


@dataclass
class Reconciler:
    """One pass at a time across instances; ``run`` returns what it repaired, by kind."""

    svc: ContactService
    settle_s: float = SETTLE_S
    repaired: dict[str, int] = field(default_factory=dict)

    async def run(self, now: float | None = None) -> dict[str, int]:
        token = secrets.token_hex(8)
        redis = self.svc.redis
        if not await redis.set(redis_keys.RECONCILE_LOCK, token, nx=True, ex=LOCK_TTL_S):
            return {}
        self.repaired = {}
        try:
            now = time.time() if now is None else now
            present = await self.svc.present_refs()
            graced = {str(m) for m in await redis.zrange(redis_keys.GRACE, 0, -1)}
            await self._agents(present)
            before = datetime.fromtimestamp(now - self.settle_s, UTC)
            async with reading(self.svc.db) as session:
                contacts = await store.open_contacts(session, created_before=before)
            for contact in contacts:
                try:
                    await self._contact(contact, present, graced, now)
                except (InvalidTransition, Conflict) as exc:
                    log.info("reconcile %s: it moved on (%s)", contact.id, exc)
                except Exception:
                    log.exception("reconcile %s failed", contact.id)
            await self._finished_in_database(before)
        finally:
            with contextlib.suppress(Exception):
                await redis.eval(_RELEASE, 1, redis_keys.RECONCILE_LOCK, token)
        if self.repaired:
            log.warning("reconciled: %s", self.repaired)
        return self.repaired

    def _count(self, kind: str) -> None:
        self.repaired[kind] = self.repaired.get(kind, 0) + 1

    async def _agents(self, present: set[str]) -> None:
        for agent in await self.svc.router.agent_views():
            if agent.presence != AgentState.OFFLINE.value and advisor_ref(agent.id) not in present:
                await self.svc.router.set_agent_state(agent.id, AgentState.OFFLINE)
                self._count("advisor_offline")

    async def _contact(
        self, contact: Contact, present: set[str], graced: set[str], now: float
    ) -> None:
        state = ContactState(contact.state)
        try:
            routed = (await self.svc.router.contact_status(contact.id)).state
        except UnknownContactError:
            routed = None
        customer_here = contact.customer_ref in present
        if state in (ContactState.QUEUED, ContactState.OFFERED):
            if routed in _FINISHED:
                await self.svc.end_contact(contact, actor="system", reason="reconciled")
                self._count("abandoned")
                return
            if routed is None and customer_here:
                await self.svc.enqueue(contact)
                self._count("enqueued")
        elif state is ContactState.CONNECTED:
            if routed is None or routed in _FINISHED:
                await self.svc.end_contact(contact, actor="system", reason="reconciled")
                self._count("wrap_up")
                return
            if contact.advisor_id is not None:
                ref = advisor_ref(agent_id_of(contact.advisor_id))
                if ref not in present:
                    await self._grace("advisor", contact, graced, now + self.svc.grace.advisor_s)
        elif state is ContactState.WRAP_UP:
            if await self._wrapup_over(contact, present):
                await self.svc.finish_wrapup(contact.id, actor="system")
                self._count("ended")
            return
        if not customer_here:
            await self._grace("customer", contact, graced, now + self.svc.grace.customer_s)

    async def _finished_in_database(self, before: datetime) -> None:
        """Contacts the router still queues, offers or holds although the database has them
        ended (Redis failed between the two writes of an ending): the router lets them go."""
        router = self.svc.router
        routed = {c.id: c.state for c in await router.contact_views()}
        for agent in await router.agent_views():
            for contact_id, how in agent.held.items():
                routed[contact_id] = how
        live = {c: how for c, how in routed.items() if how not in {s.value for s in _FINISHED}}
        if not live:
            return
        async with reading(self.svc.db) as session:
            rows = await store.contacts_by_id(session, list(live))
        for contact in rows:
            if ContactState(contact.state) not in FINAL_STATES or contact.created_at > before:
                continue
            try:
                if live[contact.id] == "assigned":
                    await router.complete(contact.id)
                else:
                    await router.cancel(contact.id)
            except UnknownContactError:
                continue
            self._count("router_released")

    async def _wrapup_over(self, contact: Contact, present: set[str]) -> bool:
        if contact.advisor_id is None:
            return True
        agent_id = agent_id_of(contact.advisor_id)
        if advisor_ref(agent_id) not in present:
            return True
        try:
            status = await self.svc.router.agent_status(agent_id)
        except UnknownAgentError:
            return True
        return status.state not in (AgentState.WRAP_UP, AgentState.BUSY)

    async def _grace(self, party: str, contact: Contact, graced: set[str], deadline: float) -> None:
        member = redis_keys.grace_member(party, contact.id)
        if member in graced:
            return
        await self.svc.redis.zadd(redis_keys.GRACE, {member: deadline}, nx=True)
        self._count(f"{party}_grace")

