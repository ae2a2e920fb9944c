"""Database tables (SQLModel) and the enums they store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

LANGUAGES = ("en", "zh", "yue")
CHANNELS = ("text", "voice", "video")
DEFAULT_CAPACITY = {"video": 1, "voice": 1, "text": 3}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Role(StrEnum):
    CUSTOMER = "customer"
    ADVISOR = "advisor"
    SUPERVISOR = "supervisor"
    COMPLIANCE = "compliance"
    ADMIN = "admin"


class User(SQLModel, table=True):
    """A person with an account: customers who signed up and every staff member."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, sa_column_kwargs={"unique": True}, index=True)
    password_hash: str = Field(max_length=255)
    role: Role = Field(sa_type=sa.String(16), index=True)
    display_name: str = Field(max_length=128)
    languages: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    skills: dict[str, int] = Field(default_factory=dict, sa_type=sa.JSON)
    capacity: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_CAPACITY), sa_type=sa.JSON)
    vip: bool = False
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    must_change_password: bool = Field(
        default=False, sa_column_kwargs={"server_default": sa.false()}
    )
    """The password was set by an administrator: nothing works until the user picks their own."""


#: The states of ``contacts.states.LIVE_STATES``, spelled out for the partial unique index
#: (the database layer does not import the contact state machine).
LIVE_CONTACT_CONDITION = "state IN ('bot', 'queued', 'offered', 'connected')"


class Contact(SQLModel, table=True):
    """One customer session, from start to end, whatever channels it used."""

    __tablename__ = "contacts"
    __table_args__ = (
        # One live contact per customer, whatever the number of sockets or instances starting
        # one at once: the database refuses the second (contacts.intake answers already_started).
        sa.Index(
            "uq_contacts_one_live_per_customer",
            "customer_ref",
            unique=True,
            sqlite_where=sa.text(LIVE_CONTACT_CONDITION),
            postgresql_where=sa.text(LIVE_CONTACT_CONDITION),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    customer_ref: str = Field(max_length=80, index=True)  # "user:<id>" or "guest:<uuid>"
    customer_name: str = Field(max_length=128)
    channels: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    language: str = Field(max_length=8)
    topic: str | None = Field(default=None, max_length=64)
    skills: dict[str, int] = Field(default_factory=dict, sa_type=sa.JSON)
    priority: int = 0
    vip: bool = False
    state: str = Field(max_length=16, index=True)
    advisor_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    instance: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    ended_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    recording_status: str | None = Field(default=None, max_length=16)
    """``recording`` while its instance writes it, then ``complete`` or ``incomplete``."""
    recording_failed: bool = Field(
        default=False, sa_column_kwargs={"server_default": sa.false()}
    )
    """A recorder could not start or write (the timeline and the alarms say what)."""


class ContactEvent(SQLModel, table=True):
    """A timestamped transition or happening in a contact's life, with its actor."""

    __tablename__ = "contact_events"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(foreign_key="contacts.id", index=True, max_length=64)
    at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    actor: str = Field(max_length=80)
    kind: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=16)
    to_state: str | None = Field(default=None, max_length=16)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class ContactWrapup(SQLModel, table=True):
    """An advisor's wrap-up of a contact they handled: the outcome code and notes (masked).

    One per advisor and hand-over: after a transfer the advisor who passed it on has one too.
    """

    __tablename__ = "contact_wrapups"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(foreign_key="contacts.id", index=True, max_length=64)
    advisor_id: int = Field(foreign_key="users.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    outcome: str | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, sa_type=sa.Text)


class ChatMessage(SQLModel, table=True):
    """A chat line of a contact, numbered in the order the server accepted it."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        sa.UniqueConstraint("contact_id", "seq", name="uq_chat_contact_seq"),
        # a retried chat.send (same client request id) is the same line (migration 0007)
        sa.Index(
            "uq_chat_contact_sender_request", "contact_id", "sender_ref", "request_id", unique=True
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(foreign_key="contacts.id", index=True, max_length=64)
    seq: int
    at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    sender_ref: str = Field(max_length=80)
    sender_role: str = Field(max_length=16)
    text: str = Field(sa_type=sa.Text)
    request_id: str | None = Field(default=None, max_length=128)


class AuditLog(SQLModel, table=True):
    """Who did what to which record, and why: sign-ins, refusals, compliance access."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), index=True)
    actor: str = Field(max_length=80, index=True)
    action: str = Field(max_length=48, index=True)
    target: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, max_length=512)
    address: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)

class ComplianceCheck(SQLModel, table=True):
    """One re-check of a contact's sealed recording (``recordings.verify``) made for compliance."""

    __tablename__ = "compliance_checks"
    __table_args__ = (sa.Index("ix_compliance_checks_contact", "contact_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(max_length=64)
    checked_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    actor: str = Field(max_length=80)
    ok: bool
    problems: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    files: int = 0
    bytes_hashed: int = 0


#: What migration 0004 builds for the compliance search that the models do not describe: the
#: SQLite FTS5 table (and the shadow tables FTS5 makes), and dialect-specific expression and
#: partial indexes. ``include_name`` keeps autogenerate (and the models-agree test) off them.
UNMODELLED = frozenset(
    {
        "chat_search",
        *(f"chat_search_{part}" for part in ("data", "idx", "content", "docsize", "config")),
        "ix_chat_messages_search",
        "ix_contact_events_intent",
        "ix_contact_events_accepted",
        "ix_contacts_created_at",
    }
)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name`` hook: everything but ``UNMODELLED``."""
    return name not in UNMODELLED


# The recordings ledger lives in this database too (its tables are defined by ``recordings``).
from recordings.ledger import ChainHead, LedgerEntry  # noqa: E402

__all__ = [
    "AuditLog",
    "ChainHead",
    "ChatMessage",
    "ComplianceCheck",
    "Contact",
    "ContactEvent",
    "ContactWrapup",
    "LedgerEntry",
    "User",
]
