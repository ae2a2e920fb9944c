"""Contacts, their events and chat messages in the database (keyword-only repository functions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, Text, func, insert, literal, update
from sqlalchemy import select as sa_select  # sqlmodel's select takes at most 4 columns
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.contacts.states import (
    FINAL_STATES,
    LIVE_STATES,
    ContactState,
    InvalidTransition,
    check_transition,
)
from contact_center.db.models import ChatMessage, Contact, ContactEvent, ContactWrapup, utcnow
from recordings.redact import mask_card_numbers, mask_fields

#: ``session.info`` key: the events added in a transaction, for the timeline once committed.
TIMELINE_EVENTS = "timeline_events"


async def get_contact(session: AsyncSession, *, contact_id: str) -> Contact | None:
    return await session.get(Contact, contact_id)


async def add_event(
    session: AsyncSession,
    *,
    contact_id: str,
    actor: str,
    kind: str,
    from_state: str | None = None,
    to_state: str | None = None,
    data: dict[str, Any] | None = None,
) -> ContactEvent:
    """Add an event row (its data with card numbers masked); ``ContactCore.tx`` sends it to the
    contact's timeline once the transaction is committed."""
    event = ContactEvent(
        contact_id=contact_id,
        actor=actor,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        data=mask_fields(data or {}),
    )
    session.add(event)
    await session.flush()
    session.info.setdefault(TIMELINE_EVENTS, []).append(event)
    return event


async def move_instance(
    session: AsyncSession, *, contact_id: str, old: str | None, new: str
) -> bool:
    """Move a contact that is not over from instance ``old`` to ``new`` (compare-and-set: of
    two instances adopting it, one wins); whether it moved."""
    same = col(Contact.instance) == old if old is not None else col(Contact.instance).is_(None)
    result = await session.exec(
        update(Contact)
        .where(col(Contact.id) == contact_id, same)
        .where(col(Contact.state).notin_([s.value for s in FINAL_STATES]))
        .values(instance=new)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)


async def transition(
    session: AsyncSession,
    *,
    contact_id: str,
    to: ContactState,
    actor: str,
    kind: str = "state",
    data: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    allowed_from: frozenset[ContactState] | None = None,
) -> tuple[str, Contact]:
    """Move a contact to ``to`` if the table allows it from its current state.

    The UPDATE is conditional on the state read, so two instances racing for the same contact
    cannot both win: the loser gets InvalidTransition naming the state it found.
    """
    contact = await session.get(Contact, contact_id, populate_existing=True)
    if contact is None:
        raise InvalidTransition(contact_id, "unknown", to.value)
    current = contact.state
    if allowed_from is not None and ContactState(current) not in allowed_from:
        raise InvalidTransition(contact_id, current, to.value)
    check_transition(contact_id, current, to)
    changes: dict[str, Any] = {"state": to.value, **(values or {})}
    if to not in LIVE_STATES and to is not ContactState.WRAP_UP:
        changes.setdefault("ended_at", utcnow())
    result = await session.exec(
        update(Contact)
        .where(col(Contact.id) == contact_id, col(Contact.state) == current)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        fresh = await session.get(Contact, contact_id, populate_existing=True)
        raise InvalidTransition(contact_id, fresh.state if fresh else "unknown", to.value)
    await add_event(
        session,
        contact_id=contact_id,
        actor=actor,
        kind=kind,
        from_state=current,
        to_state=to.value,
        data=data,
    )
    refreshed = await session.get(Contact, contact_id, populate_existing=True)
    assert refreshed is not None
    return current, refreshed


async def add_chat_message(
    factory: async_sessionmaker[AsyncSession],
    *,
    contact_id: str,
    sender_ref: str,
    sender_role: str,
    text: str,
    request_id: str | None = None,
) -> tuple[ChatMessage, bool]:
    """Append a chat line numbered after the contact's last, in one statement of its own;
    returns (the line, whether it is new).

    Two instances writing to one contact at once may pick the same number: the unique
    constraint refuses the second, which takes the next number. A line sent again with the
    ``request_id`` of a stored one (a client's retry) is that line: nothing is added.
    """
    for _attempt in range(10):
        if request_id is not None and (
            stored := await _line_of_request(factory, contact_id, sender_ref, request_id)
        ):
            return stored, False
        at = utcnow()
        next_seq = sa_select(
            literal(contact_id),
            func.coalesce(func.max(ChatMessage.seq), 0) + 1,
            literal(at, type_=DateTime(timezone=True)),
            literal(sender_ref),
            literal(sender_role),
            literal(text, type_=Text()),
            literal(request_id, type_=String()),
        ).where(col(ChatMessage.contact_id) == contact_id)
        columns = ["contact_id", "seq", "at", "sender_ref", "sender_role", "text", "request_id"]
        statement = (
            insert(ChatMessage)
            .from_select(columns, next_seq)
            .returning(col(ChatMessage.id), col(ChatMessage.seq))
        )
        try:
            async with factory() as session, session.begin():
                row = (await session.exec(statement)).one()
        except IntegrityError:
            continue  # another instance took this number (or stored this request): again
        return ChatMessage(
            id=row[0],
            contact_id=contact_id,
            seq=row[1],
            at=at,
            sender_ref=sender_ref,
            sender_role=sender_role,
            text=text,
            request_id=request_id,
        ), True
    raise RuntimeError(f"could not number a chat message of contact {contact_id}")


async def _line_of_request(
    factory: async_sessionmaker[AsyncSession], contact_id: str, sender_ref: str, request_id: str
) -> ChatMessage | None:
    async with factory() as session:
        result = await session.exec(
            select(ChatMessage).where(
                ChatMessage.contact_id == contact_id,
                ChatMessage.sender_ref == sender_ref,
                ChatMessage.request_id == request_id,
            )
        )
        return result.first()


async def chat_history(session: AsyncSession, *, contact_id: str) -> list[ChatMessage]:
    result = await session.exec(
        select(ChatMessage)
        .where(ChatMessage.contact_id == contact_id)
        .order_by(col(ChatMessage.seq))
    )
    return list(result.all())


async def events_of(session: AsyncSession, *, contact_id: str) -> list[ContactEvent]:
    result = await session.exec(
        select(ContactEvent)
        .where(ContactEvent.contact_id == contact_id)
        .order_by(col(ContactEvent.id))
    )
    return list(result.all())


async def live_contacts_of_customer(session: AsyncSession, *, customer_ref: str) -> list[Contact]:
    result = await session.exec(
        select(Contact).where(
            Contact.customer_ref == customer_ref,
            col(Contact.state).in_([s.value for s in LIVE_STATES]),
        )
    )
    return list(result.all())


async def contacts_by_id(session: AsyncSession, ids: list[str]) -> list[Contact]:
    if not ids:
        return []
    result = await session.exec(select(Contact).where(col(Contact.id).in_(ids)))
    return list(result.all())


async def open_contacts_of_advisor(session: AsyncSession, *, advisor_id: int) -> list[Contact]:
    result = await session.exec(
        select(Contact).where(
            Contact.advisor_id == advisor_id,
            col(Contact.state).in_([ContactState.CONNECTED.value, ContactState.WRAP_UP.value]),
        )
    )
    return list(result.all())


async def open_contacts(session: AsyncSession, *, created_before: datetime) -> list[Contact]:
    """Every contact not in a final state, created before ``created_before`` (oldest first)."""
    result = await session.exec(
        select(Contact)
        .where(
            col(Contact.state).in_([s.value for s in (*LIVE_STATES, ContactState.WRAP_UP)]),
            col(Contact.created_at) < created_before,
        )
        .order_by(col(Contact.created_at))
    )
    return list(result.all())


async def add_wrapup(
    session: AsyncSession, *, contact_id: str, advisor_id: int, outcome: str | None,
    notes: str | None,
) -> ContactWrapup:
    """Keep an advisor's wrap-up of a contact (the notes with card numbers masked)."""
    wrapup = ContactWrapup(
        contact_id=contact_id,
        advisor_id=advisor_id,
        outcome=outcome,
        notes=mask_card_numbers(notes) if notes else None,
    )
    session.add(wrapup)
    await session.flush()
    return wrapup


async def wrapups_of(session: AsyncSession, *, contact_ids: list[str]) -> list[ContactWrapup]:
    """The wrap-ups of these contacts, oldest first."""
    if not contact_ids:
        return []
    result = await session.exec(
        select(ContactWrapup)
        .where(col(ContactWrapup.contact_id).in_(contact_ids))
        .order_by(col(ContactWrapup.id))
    )
    return list(result.all())


async def previous_contacts(
    session: AsyncSession, *, customer_ref: str, before: str, limit: int
) -> list[Contact]:
    """The customer's other contacts, newest first (at most ``limit``)."""
    result = await session.exec(
        select(Contact)
        .where(Contact.customer_ref == customer_ref, Contact.id != before)
        .order_by(col(Contact.created_at).desc())
        .limit(limit)
    )
    return list(result.all())


async def events_by_actor(
    session: AsyncSession, *, actor: str, kind: str, since: datetime
) -> list[ContactEvent]:
    """The ``kind`` events of ``actor`` since ``since``, oldest first."""
    result = await session.exec(
        select(ContactEvent)
        .where(
            ContactEvent.actor == actor,
            ContactEvent.kind == kind,
            col(ContactEvent.at) >= since,
        )
        .order_by(col(ContactEvent.id))
    )
    return list(result.all())
