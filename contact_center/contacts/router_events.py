"""Mirror the router's decisions (offers made, expired, rejected; wrap-up over) in the database
and tell the people concerned. Run by ``server.contexts`` for each event of the stream."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contact_center.contacts import store
from contact_center.contacts.core import advisor_ref, now_utc
from contact_center.contacts.service import ContactService
from contact_center.contacts.states import ContactState, InvalidTransition
from contact_center.db.engine import transaction
from contact_center.db.models import Contact
from contact_center.protocol import AgentStateNotice, SessionState
from routing.errors import UnknownAgentError, UnknownContactError
from routing.models import AgentState, EventType, RoutingEvent
from routing.models import ContactState as RouterState

log = logging.getLogger(__name__)


@dataclass
class RouterEvents:
    """The contact service's answers to router events."""

    svc: ContactService

    async def handle_router_event(self, event: RoutingEvent) -> None:
        """Mirror a router decision in the database and tell the people concerned.

        Instances of the consumer group may handle a contact's events out of order (an expiry
        on one, the next offer on another), so the database is brought to what the router holds
        now rather than to what the event says, and offers go out only while still open.
        """
        contact_id, agent_id = event.contact_id, event.agent_id
        explanation = event.explanation.model_dump() if event.explanation else None
        offer_events = (EventType.OFFER_EXPIRED, EventType.OFFER_REJECTED, EventType.OFFER_RELEASED)
        if contact_id and (event.type is EventType.OFFER_CREATED or event.type in offer_events):
            # Every decision, with why, whether or not the database state moves with it.
            await self.svc.recordings.add(
                contact_id,
                "routing",
                at=datetime.fromtimestamp(event.time, UTC),
                decision=event.type.value,
                agent_id=agent_id,
                explanation=explanation,
                data=event.data,
            )
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
                self.svc.waiting.watch(contact_id, contact.customer_ref, keep=True)
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
                    advisor_ref(agent_id), await self._agent_notice(agent_id, state, event.data)
                )
            if state == AgentState.AVAILABLE.value:
                await self._close_wrapups_of(int(agent_id))

    async def _agent_notice(
        self, agent_id: str, state: str, data: dict[str, Any]
    ) -> AgentStateNotice:
        """What the advisor is told of their new state: why, and until when a wrap-up lasts."""
        reason = str(data.get("reason") or "") or None
        misses = data.get("misses") if reason == "missed_offers" else None
        wrap_up_until = None
        if state == AgentState.WRAP_UP.value:
            with contextlib.suppress(UnknownAgentError):
                until = (await self.svc.router.agent_status(agent_id)).wrap_up_until
                wrap_up_until = datetime.fromtimestamp(until, UTC) if until else None
        return AgentStateNotice(
            state=state,
            reason=reason,
            missed_offers=int(misses) if isinstance(misses, int | float) else None,
            wrap_up_until=wrap_up_until,
        )

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
        async with self.svc.tx() as session:
            contact = await store.get_contact(session, contact_id=contact_id)
            if contact is None or target is None or contact.state == target:
                return contact
            try:
                _, contact = await store.transition(
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
            open_contacts = await store.open_contacts_of_advisor(session, advisor_id=user_id)
        for contact in open_contacts:
            if contact.state == ContactState.WRAP_UP:
                with contextlib.suppress(InvalidTransition):
                    await self.svc.finish_wrapup(contact.id, actor="router")

