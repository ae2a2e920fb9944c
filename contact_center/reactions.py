"""What the contact center does when something happens without a request: a router decision
(offers made, expired, rejected; wrap-up over), a media connection changing state, a grace
period running out, a queue position to push. Each runs in a loop owned by ``runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from contact_center import contacts, rkeys
from contact_center.db import transaction
from contact_center.errors import Conflict
from contact_center.lifecycle import ContactState, InvalidTransition
from contact_center.models import Contact
from contact_center.protocol import AgentStateNotice, PeerEvent, QueuePosition, SessionState
from contact_center.sessions import (
    POSITION_PUSH_EVERY_S,
    SessionService,
    Waiting,
    advisor_ref,
    now_utc,
)
from routing.errors import UnknownContactError
from routing.models import AgentState, EventType, RoutingEvent
from routing.models import ContactState as RouterState

log = logging.getLogger(__name__)


@dataclass
class Reactions:
    """The session service's answers to events that no client request caused."""

    svc: SessionService
    _media_events: asyncio.Queue[tuple[str, str, str, str]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )

    def media_event(self, contact_id: str, party: str, what: str, state: str) -> None:
        """Called by the media layer (synchronously); handled by ``run_media_events``."""
        try:
            self._media_events.put_nowait((contact_id, party, what, state))
        except asyncio.QueueFull:
            log.warning("media events: queue full, dropping %s %s %s", contact_id, party, state)

    async def run_media_events(self) -> None:
        while True:
            contact_id, party, what, state = await self._media_events.get()
            if what != "connection" or state not in ("connected", "failed", "closed"):
                continue
            try:
                async with transaction(self.svc.db) as session:
                    contact = await contacts.get_contact(session, contact_id=contact_id)
                    if contact is None:
                        continue
                    await contacts.add_event(
                        session,
                        contact_id=contact_id,
                        actor="media",
                        kind=f"peer_{state}",
                        data={"party": party},
                    )
                await self.svc.notify_parties(
                    contact, PeerEvent(contact_id=contact_id, party=party, state=state)
                )
            except Exception:
                log.exception("media event %s %s %s", contact_id, party, state)

    async def handle_router_event(self, event: RoutingEvent) -> None:
        """Mirror a router decision in the database and tell the people concerned.

        Instances of the consumer group may handle a contact's events out of order (an expiry
        on one, the next offer on another), so the database is brought to what the router holds
        now rather than to what the event says, and offers go out only while still open.
        """
        contact_id, agent_id = event.contact_id, event.agent_id
        explanation = event.explanation.model_dump() if event.explanation else None
        offer_events = (EventType.OFFER_EXPIRED, EventType.OFFER_REJECTED, EventType.OFFER_RELEASED)
        if event.type is EventType.OFFER_CREATED and contact_id and agent_id:
            contact = await self._mirror(
                contact_id, kind="offered", data={"agent_id": agent_id, "explanation": explanation}
            )
            if contact is not None and contact.state == ContactState.OFFERED:
                await self.svc.bus.publish(
                    contact.customer_ref, self.svc.state_message(contact, reason="offered")
                )
            await self.svc.send_offer(contact_id, agent_id, explanation)
        elif event.type in offer_events and contact_id:
            contact = await self._mirror(
                contact_id, kind=event.type.value, data={"agent_id": agent_id}
            )
            if contact is not None and contact.state == ContactState.QUEUED:
                self.svc.waiting.setdefault(contact_id, Waiting(customer_ref=contact.customer_ref))
                await self.svc.bus.publish(
                    contact.customer_ref, self.svc.state_message(contact, reason=event.type.value)
                )
            if agent_id:
                await self.svc.bus.publish(
                    advisor_ref(agent_id),
                    SessionState(
                        contact_id=contact_id,
                        state="withdrawn",
                        reason=event.type.value,
                        at=now_utc(),
                    ),
                )
        elif event.type is EventType.AGENT_STATE_CHANGED and agent_id:
            state = str(event.data.get("to") or event.data.get("state") or "")
            if state:
                await self.svc.bus.publish(
                    advisor_ref(agent_id),
                    AgentStateNotice(
                        state=state, reason=str(event.data.get("reason") or "") or None
                    ),
                )
            if state == AgentState.AVAILABLE.value:
                await self._close_wrapups_of(int(agent_id))

    async def _mirror(self, contact_id: str, *, kind: str, data: dict[str, Any]) -> Contact | None:
        """Bring a waiting contact's database state to the router's (queued or offered)."""
        try:
            status = await self.svc.router.contact_status(contact_id)
        except UnknownContactError:
            return None
        target = {
            RouterState.QUEUED: ContactState.QUEUED,
            RouterState.OFFERED: ContactState.OFFERED,
        }.get(status.state)
        async with transaction(self.svc.db) as session:
            contact = await contacts.get_contact(session, contact_id=contact_id)
            if contact is None or target is None or contact.state == target:
                return contact
            try:
                _, contact = await contacts.transition(
                    session,
                    contact_id=contact_id,
                    to=target,
                    actor="router",
                    kind=kind,
                    data=data,
                    allowed_from=frozenset({ContactState.QUEUED, ContactState.OFFERED}),
                )
            except InvalidTransition as exc:
                log.info("router event for a contact that moved on: %s", exc)
        return contact

    async def _close_wrapups_of(self, user_id: int) -> None:
        """The router ended the wrap-up time: contacts still in wrap-up end."""
        async with transaction(self.svc.db) as session:
            open_contacts = await contacts.open_contacts_of_advisor(session, advisor_id=user_id)
        for contact in open_contacts:
            if contact.state == ContactState.WRAP_UP:
                with contextlib.suppress(InvalidTransition):
                    await self.svc.finish_wrapup(contact.id, actor="router")

    # ------------------------------------------------------------------ timers

    async def sweep_grace(self, now: float | None = None) -> int:
        """Act for parties whose grace period ran out; each entry is claimed by one instance."""
        due = await self.svc.redis.zrangebyscore(
            rkeys.GRACE, "-inf", now or time.time(), start=0, num=100
        )
        handled = 0
        for member in map(str, due):
            if not await self.svc.redis.zrem(rkeys.GRACE, member):
                continue  # another instance took it
            party, contact_id = rkeys.parse_grace_member(member)
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
            contact = await contacts.get_contact(session, contact_id=contact_id)
        if contact is None:
            return
        if party == "customer":
            await self.svc.end_contact(contact, actor="system", reason="customer_gone")
        elif party == "advisor" and contact.state == ContactState.CONNECTED:
            async with transaction(self.svc.db) as session:
                _, contact = await contacts.transition(
                    session,
                    contact_id=contact_id,
                    to=ContactState.QUEUED,
                    actor="system",
                    kind="advisor_gone",
                    data={"advisor_id": contact.advisor_id},
                    values={"advisor_id": None},
                )
            await self.svc.media.close_call(contact_id)
            await self.svc.bus.publish(
                contact.customer_ref, self.svc.state_message(contact, reason="advisor_gone")
            )
            self.svc.waiting[contact_id] = Waiting(customer_ref=contact.customer_ref)
            await self.svc.router.requeue_front(contact_id)

    async def push_positions(self) -> None:
        """Push queue position and expected wait to local waiting customers on change or every 10 s."""
        now = time.monotonic()
        for contact_id, waiting in list(self.svc.waiting.items()):
            try:
                position = await self.svc.router.position(contact_id)
            except UnknownContactError:
                self.svc.waiting.pop(contact_id, None)
                continue
            if position.position == 0:
                continue  # offered or assigned: not in the queue right now
            key = (position.position, round(position.ewt_s))
            if key != waiting.last or now - waiting.pushed_at >= POSITION_PUSH_EVERY_S:
                waiting.last, waiting.pushed_at = key, now
                await self.svc.bus.publish(
                    waiting.customer_ref,
                    QueuePosition(
                        contact_id=contact_id,
                        position=position.position,
                        ewt_s=round(position.ewt_s, 1),
                    ),
                )
