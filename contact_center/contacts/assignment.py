"""Advisors and offers: availability, accept, reject, transfer, wrap-up."""

from __future__ import annotations

import logging

from contact_center.contacts import store
from contact_center.contacts.core import (
    ContactCore,
    advisor_ref,
    agent_id_of,
)
from contact_center.contacts.states import ContactState, InvalidTransition
from contact_center.db.engine import transaction
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

    async def transfer(
        self, identity: Identity, contact_id: str, *, skills: dict[str, int], language: str | None
    ) -> Contact:
        contact = await self.contact_for(identity, contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(f"contact {contact_id} is {contact.state}; only a connected one moves")
        contact = await self.back_to_queue(
            contact_id,
            actor=identity.ref,
            kind="transferred",
            reason="transferred",
            data={"skills": skills, "language": language, "from_advisor": identity.user_id},
            values={"skills": skills, "language": language or contact.language},
        )
        await self.bus.publish(identity.ref, self.state_message(contact, reason="transferred_away"))
        await self.router.transfer(contact_id, skills=skills, language=language, exclude_agent=True)
        return contact

    async def wrapup_done(
        self, identity: Identity, contact_id: str | None, *, notes: str | None = None
    ) -> list[str]:
        assert identity.user_id is not None
        async with transaction(self.db) as session:
            open_contacts = await store.open_contacts_of_advisor(
                session, advisor_id=identity.user_id
            )
        in_wrapup = [c for c in open_contacts if c.state == ContactState.WRAP_UP]
        targets = in_wrapup
        if contact_id is not None:
            targets = [c for c in in_wrapup if c.id == contact_id]
            if not targets:
                await self.contact_for(identity, contact_id)  # audits a foreign id
                raise Conflict(f"contact {contact_id} is not in wrap-up", code=ErrorCode.INVALID_STATE)
        done = [await self.finish_wrapup(c.id, actor=identity.ref, notes=notes) for c in targets]
        if len(done) == len(in_wrapup):
            # The router's wrap-up is the advisor's, not a contact's: it ends with the last one.
            await self.router.wrapup_done(agent_id_of(identity.user_id))
        return done

    async def finish_wrapup(self, contact_id: str, *, actor: str, notes: str | None = None) -> str:
        async with self.tx() as session:
            _, contact = await store.transition(
                session,
                contact_id=contact_id,
                to=ContactState.ENDED,
                actor=actor,
                kind="wrapup_done",
                data={"notes": notes} if notes else None,
            )
        if contact.advisor_id is not None:
            await self.bus.publish(
                advisor_ref(agent_id_of(contact.advisor_id)),
                self.state_message(contact, reason="wrapup_done"),
            )
        return contact_id

