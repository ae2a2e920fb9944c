"""What the advisor's side panel shows about a contact's customer: who they are, their earlier
contacts with the bank (with each advisor's outcome and notes) and the bot's part of this one.

Only the advisor holding the contact (connected or in wrap-up) and supervisors may read it;
anyone else is refused and audited like any other contact they are not a party to.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from contact_center.contacts import store
from contact_center.contacts.core import ContactCore, facts_from, now_utc
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, ContactEvent, ContactWrapup, Role
from contact_center.errors import Forbidden
from contact_center.identity import audit
from contact_center.identity.auth import Identity
from contact_center.identity.users import display_names
from contact_center.protocol import ContactFacts

#: How many earlier contacts the panel lists (newest first).
PREVIOUS_SHOWN = 20
#: Who may read any contact's context.
OVERSEERS = frozenset({Role.SUPERVISOR, Role.ADMIN})


class WrapupView(BaseModel):
    """One advisor's wrap-up of a contact."""

    advisor: str | None = Field(description="The advisor's display name")
    outcome: str | None = Field(description="An outcome code (CC_WRAPUP_OUTCOMES)")
    notes: str | None
    at: datetime


class PreviousContact(BaseModel):
    """An earlier contact of the same customer."""

    contact_id: str
    started_at: datetime
    channels: list[str]
    topic: str | None
    intent: str | None = Field(description="What the bot understood, if it had the contact")
    state: str
    advisors: list[str] = Field(description="Who handled it, in order")
    wrapups: list[WrapupView]


class TranscriptLine(BaseModel):
    sender: str = Field(description="customer, bot or system")
    text: str
    at: datetime


class CustomerContextView(BaseModel):
    """The context panel of one contact."""

    contact_id: str
    facts: ContactFacts
    previous: list[PreviousContact]
    bot_transcript: list[TranscriptLine] = Field(
        description="The conversation before the bot handed the customer over"
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _intent(events: list[ContactEvent]) -> str | None:
    found = [str(e.data["intent"]) for e in events if e.kind == "handoff" and e.data.get("intent")]
    return found[-1] if found else None


def _advisor_ids(events: list[ContactEvent]) -> list[int]:
    ids: list[int] = []
    for event in events:
        if event.kind == "accepted" and event.actor.startswith("user:"):
            uid = int(event.actor.partition(":")[2])
            if uid not in ids:
                ids.append(uid)
    return ids


class CustomerContext(ContactCore):
    """The customer context of a contact, for its advisor and supervisors."""

    async def desk_contact(self, identity: Identity, contact_id: str) -> Contact:
        """The contact if ``identity`` holds it (an advisor) or oversees (supervisor, admin)."""
        async with transaction(self.db) as session:
            contact = await store.get_contact(session, contact_id=contact_id)
        if contact is not None and identity.role in OVERSEERS:
            return contact
        if (
            contact is not None
            and identity.role is Role.ADVISOR
            and identity.user_id is not None
            and contact.advisor_id == identity.user_id
        ):
            return contact
        await audit.record(
            self.db,
            actor=identity.ref,
            action="access.denied",
            target=f"contact:{contact_id}",
            detail={"role": identity.role.value, "what": "context"},
        )
        raise Forbidden(f"contact {contact_id} is not yours")

    async def customer_context(self, contact: Contact) -> CustomerContextView:
        async with transaction(self.db) as session:
            events = await store.events_of(session, contact_id=contact.id)
            lines = await store.chat_history(session, contact_id=contact.id)
            earlier = await store.previous_contacts(
                session, customer_ref=contact.customer_ref, before=contact.id,
                limit=PREVIOUS_SHOWN,
            )
            events_by = {c.id: await store.events_of(session, contact_id=c.id) for c in earlier}
            wrapups = await store.wrapups_of(session, contact_ids=[c.id for c in earlier])
            ids = {uid for evs in events_by.values() for uid in _advisor_ids(evs)}
            names = await display_names(
                session, user_ids=ids | {w.advisor_id for w in wrapups}
            )
        handoff = next((e for e in events if e.kind == "handoff"), None)
        bot_lines = [] if handoff is None else [
            TranscriptLine(sender=m.sender_role, text=m.text, at=_utc(m.at))
            for m in lines
            if m.sender_role != "advisor" and _utc(m.at) <= _utc(handoff.at)
        ]
        by_contact: dict[str, list[ContactWrapup]] = {}
        for w in wrapups:
            by_contact.setdefault(w.contact_id, []).append(w)
        previous = [
            PreviousContact(
                contact_id=c.id,
                started_at=_utc(c.created_at),
                channels=list(c.channels),
                topic=c.topic,
                intent=_intent(events_by[c.id]),
                state=c.state,
                advisors=[names.get(uid, f"#{uid}") for uid in _advisor_ids(events_by[c.id])],
                wrapups=[
                    WrapupView(
                        advisor=names.get(w.advisor_id), outcome=w.outcome, notes=w.notes,
                        at=_utc(w.at),
                    )
                    for w in by_contact.get(c.id, [])
                ],
            )
            for c in earlier
        ]
        return CustomerContextView(
            contact_id=contact.id,
            facts=facts_from(contact, events, now=now_utc()),
            previous=previous,
            bot_transcript=bot_lines,
        )
