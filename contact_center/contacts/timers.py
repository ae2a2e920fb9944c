"""What happens when time passes: grace periods that ran out, queue positions to push.
Each runs in a loop owned by ``server.contexts``."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.core import POSITION_PUSH_EVERY_S, advisor_ref, agent_id_of
from contact_center.contacts.service import ContactService
from contact_center.contacts.states import ContactState, InvalidTransition
from contact_center.db.engine import transaction
from contact_center.errors import Conflict
from contact_center.protocol import QueuePositionPush
from routing.errors import UnknownContactError

log = logging.getLogger(__name__)


@dataclass
class Timers:
    """Grace expiry (claimed by one instance each) and queue position pushes."""

    svc: ContactService

    async def sweep_grace(self, now: float | None = None) -> int:
        """Act for parties whose grace period ran out; each entry is claimed by one instance."""
        due = await self.svc.redis.zrangebyscore(
            redis_keys.GRACE, "-inf", now or time.time(), start=0, num=100
        )
        handled = 0
        for member in map(str, due):
            if not await self.svc.redis.zrem(redis_keys.GRACE, member):
                continue  # another instance took it
            party, contact_id = redis_keys.parse_grace_member(member)
            try:
                await self._grace_expired(party, contact_id)
                handled += 1
            except (InvalidTransition, Conflict) as exc:
                log.info("grace expiry of %s: %s", contact_id, exc)
            except Exception:
                log.exception("grace expiry of %s failed", contact_id)
        return handled

    async def _grace_expired(self, party: str, contact_id: str) -> None:
        async with transaction(self.svc.db) as session:
            contact = await store.get_contact(session, contact_id=contact_id)
        if contact is None:
            return
        # A reconnect on another instance may land while the old socket's clean-up still runs
        # and (re)starts the grace period after the reconnect cancelled it: whoever is
        # connected somewhere is not gone.
        ref = contact.customer_ref if party == "customer" else (
            advisor_ref(agent_id_of(contact.advisor_id)) if contact.advisor_id is not None else None
        )
        if ref is not None and await self.svc.present_anywhere(ref):
            log.info("grace of %s for %s ended, but they are connected", party, contact_id)
            return
        if party == "customer":
            await self.svc.end_contact(contact, actor="system", reason="customer_gone")
        elif party == "advisor" and contact.state == ContactState.CONNECTED:
            await self.svc.back_to_queue(
                contact_id,
                actor="system",
                kind="advisor_gone",
                reason="advisor_gone",
                data={"advisor_id": contact.advisor_id},
            )
            await self.svc.router.requeue_front(contact_id)

    async def push_positions(self) -> None:
        """Push queue position and expected wait to local waiting customers on change or every 10 s."""
        now = time.monotonic()
        for contact_id, waiting in self.svc.waiting:
            try:
                position = await self.svc.router.position(contact_id)
            except UnknownContactError:
                self.svc.waiting.forget(contact_id)
                continue
            if position.position == 0:
                continue  # offered or assigned: not in the queue right now
            # Nobody signed in who could serve it (not even one who missed it): no estimate.
            staffed = position.eligible_agents + position.excluded_count > 0
            key = (position.position, round(position.ewt_s), staffed)
            if key != waiting.last or now - waiting.pushed_at >= POSITION_PUSH_EVERY_S:
                waiting.last, waiting.pushed_at = key, now
                await self.svc.bus.publish(
                    waiting.customer_ref,
                    QueuePositionPush(
                        contact_id=contact_id,
                        position=position.position,
                        ewt_s=round(position.ewt_s, 1),
                        staffed=staffed,
                    ),
                )
