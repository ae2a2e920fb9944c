"""Advisors and offers: availability, accept, reject (transfers and wrap-ups have modules of
their own)."""

from __future__ import annotations

import logging

from contact_center.contacts import store
from contact_center.contacts.core import (
    ContactCore,
    agent_id_of,
)
from contact_center.contacts.states import ContactState, InvalidTransition
from contact_center.db.models import Contact
from contact_center.errors import Conflict, ErrorCode, NotFound
from contact_center.identity.auth import Identity
from routing.errors import InvalidStateError, UnknownContactError
from routing.models import AgentState

log = logging.getLogger(__name__)


class Assignment(ContactCore):
    """Advisors and offers."""

    async def set_agent_status(self, identity: Identity, status: str) -> str:
        assert identity.user_id is not None
        state = await self.router.set_agent_state(agent_id_of(identity.user_id), AgentState(status))
        return state.value

    async def accept(self, identity: Identity, contact_id: str) -> Contact:
        assert identity.user_id is not None
        agent_id = agent_id_of(identity.user_id)
        try:
            assignment = await self.router.accept(contact_id, agent_id)
        except UnknownContactError:
            raise NotFound(f"no offer of contact {contact_id} for you") from None
        except InvalidStateError as exc:
            raise Conflict(str(exc), code=exc.code) from None
        explanation = assignment.explanation.model_dump() if assignment.explanation else {}
        async with self.tx() as session:
            try:
                _, contact = await store.transition(
                    session,
                    contact_id=contact_id,
                    to=ContactState.CONNECTED,
                    actor=identity.ref,
                    kind="accepted",
                    data={"agent_id": agent_id, "explanation": explanation},
                    values={"advisor_id": identity.user_id},
                )
            except InvalidTransition as exc:
                existing = await store.get_contact(session, contact_id=contact_id)
                if (
                    existing is not None
                    and existing.state == ContactState.CONNECTED
                    and existing.advisor_id == identity.user_id
                ):
                    contact = existing  # accept is idempotent
                else:
                    raise Conflict(str(exc), code=ErrorCode.INVALID_STATE) from None
        self.waiting.forget(contact_id)
        await self.recordings.add(
            contact_id,
            "routing",
            decision="accepted",
            agent_id=agent_id,
            by=identity.ref,
            explanation=explanation,
        )
        told = self.state_message(contact, reason="accepted", advisor_name=identity.display_name)
        await self.bus.publish(contact.customer_ref, told)
        # The advisor's copy carries the facts: their panel may be drawn from it, before the ack.
        facts = await self.facts_of(contact)
        await self.bus.publish(identity.ref, told.model_copy(update={"facts": facts}))
        return contact

    async def reject(self, identity: Identity, contact_id: str) -> None:
        assert identity.user_id is not None
        try:
            await self.router.reject(contact_id, agent_id_of(identity.user_id))
        except UnknownContactError:
            raise NotFound(f"no offer of contact {contact_id} for you") from None
        except InvalidStateError as exc:
            raise Conflict(str(exc), code=exc.code) from None
