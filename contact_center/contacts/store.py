"""Contacts, their events and chat messages in the database (keyword-only repository functions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam, func, insert, update
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


@dataclass(frozen=True)
class NewChatLine:
    """A chat line to store: numbered and timed by the server when it is written.

    ``admit``, when given, is asked in the line's transaction whether the contact as it is
    then (None: no such contact) takes the line: an exception refuses it (nothing stored)."""

    contact_id: str
    sender_ref: str
    sender_role: str
    text: str
    request_id: str | None = None
    admit: Callable[[Contact | None], Exception | None] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class StoredChatLine:
    """A chat line as its transaction stored (or found) it: a row of ``chat_messages``."""

    id: int
    contact_id: str
    seq: int
    at: datetime
    sender_ref: str
    sender_role: str
    text: str
    request_id: str | None


#: What ``add_chat_messages`` gives for each line: (the line, whether it is new), or why the
#: line was refused.
ChatOutcome = tuple[StoredChatLine, bool] | Exception


@dataclass(frozen=True, slots=True)
class _Inserted:
    """A line of the batch's INSERT (``index`` in it), for the line itself (``new``) or for a
    repeat of its request id later in the same batch."""

    index: int
    new: bool

# Core statements over the table (no ORM objects: building a SQLModel instance per line was a
# fifth of the event loop at 1,000 lines/s), each built once so that its compiled form is
# found in SQLAlchemy's cache without rebuilding the statement.
_CHAT = ChatMessage.__table__  # type: ignore[attr-defined]
_LINE_COLUMNS = [_CHAT.c[name] for name in StoredChatLine.__slots__]
_INSERT_LINES = insert(_CHAT).returning(_CHAT.c.id, _CHAT.c.contact_id, _CHAT.c.seq)
_LAST_SEQS = (
    sa.select(_CHAT.c.contact_id, func.max(_CHAT.c.seq))
    .where(_CHAT.c.contact_id.in_(bindparam("contact_ids", expanding=True)))
    .group_by(_CHAT.c.contact_id)
)
_STORED_REQUESTS = sa.select(*_LINE_COLUMNS).where(
    _CHAT.c.contact_id.in_(bindparam("contact_ids", expanding=True)),
    _CHAT.c.request_id.in_(bindparam("request_ids", expanding=True)),
)


async def add_chat_message(
    factory: async_sessionmaker[AsyncSession],
    *,
    contact_id: str,
    sender_ref: str,
    sender_role: str,
    text: str,
    request_id: str | None = None,
) -> tuple[StoredChatLine, bool]:
    """Append one chat line (see ``add_chat_messages``); returns (the line, whether it is new)."""
    line = NewChatLine(contact_id, sender_ref, sender_role, text, request_id)
    outcomes, _contacts = await add_chat_messages(factory, [line])
    outcome = outcomes[0]
    assert not isinstance(outcome, Exception), "a line without admit is never refused"
    return outcome


async def add_chat_messages(
    factory: async_sessionmaker[AsyncSession], lines: Sequence[NewChatLine]
) -> tuple[list[ChatOutcome], dict[str, Contact]]:
    """Append ``lines`` in one transaction, in their order, each numbered after its contact's
    last; returns the outcome of each (``ChatOutcome``) and, when a line has ``admit``, the
    contacts of the lines as the transaction read them.

    A line sent again with the ``request_id`` of a stored one (a client's retry), or of an
    earlier one of ``lines``, is that line: nothing is added. Two instances writing to one
    contact at once may pick the same number: the unique constraint refuses the second
    transaction, which is run again with fresh numbers.
    """
    for _attempt in range(10):
        try:
            async with factory() as session, session.begin():
                return await _add_lines(session, lines)
        except IntegrityError:
            continue  # another instance took a number (or stored a request): again
    raise RuntimeError(f"could not number {len(lines)} chat line(s)")


async def _add_lines(
    session: AsyncSession, lines: Sequence[NewChatLine]
) -> tuple[list[ChatOutcome], dict[str, Contact]]:
    contact_ids = sorted({line.contact_id for line in lines})
    contacts: dict[str, Contact] = {}
    if any(line.admit is not None for line in lines):
        found_contacts = await session.exec(select(Contact).where(col(Contact.id).in_(contact_ids)))
        contacts = {contact.id: contact for contact in found_contacts}
    connection = await session.connection()
    request_ids = {line.request_id for line in lines if line.request_id is not None}
    stored: dict[tuple[str, str, str | None], StoredChatLine] = {}
    if request_ids:
        found = await connection.execute(
            _STORED_REQUESTS, {"contact_ids": contact_ids, "request_ids": sorted(request_ids)}
        )
        stored = {
            (row.contact_id, row.sender_ref, row.request_id): StoredChatLine(*row) for row in found
        }
    last_seq = await connection.execute(_LAST_SEQS, {"contact_ids": contact_ids})
    last: dict[str, int] = {contact_id: seq for contact_id, seq in last_seq}
    at = utcnow()
    results: list[ChatOutcome | _Inserted] = []
    new: list[dict[str, Any]] = []
    earlier: dict[tuple[str, str, str | None], int] = {}  # request -> index in ``new``
    for line in lines:
        refused = line.admit(contacts.get(line.contact_id)) if line.admit else None
        if refused is not None:
            results.append(refused)
            continue
        key = (line.contact_id, line.sender_ref, line.request_id)
        if line.request_id is not None:
            if key in stored:
                results.append((stored[key], False))
                continue
            if key in earlier:  # the same request twice in this batch: the first one
                results.append(_Inserted(earlier[key], new=False))
                continue
            earlier[key] = len(new)
        last[line.contact_id] = seq = last.get(line.contact_id, 0) + 1
        results.append(_Inserted(len(new), new=True))
        new.append(
            {"contact_id": line.contact_id, "seq": seq, "at": at, "sender_ref": line.sender_ref,
             "sender_role": line.sender_role, "text": line.text, "request_id": line.request_id}
        )  # fmt: skip
    made: list[StoredChatLine] = []
    if new:
        # executemany (SQLAlchemy's "insertmanyvalues"): one statement compiled once and cached
        rows = await connection.execute(_INSERT_LINES, new)
        ids = {(contact_id, seq): row_id for row_id, contact_id, seq in rows}
        made = [StoredChatLine(id=ids[(v["contact_id"], v["seq"])], **v) for v in new]
    outcomes = [
        (made[r.index], r.new) if isinstance(r, _Inserted) else r for r in results
    ]
    return outcomes, contacts


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
