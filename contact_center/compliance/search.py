"""Search contacts for compliance: every filter of the console, free text, sorting and paging.

``SearchQuery`` is what the console (or ``GET /api/compliance/search``) asks; ``search`` turns
it into one SQL query for the page and one for the total, on SQLite or PostgreSQL. What a
contact's columns do not hold directly is derived in SQL, with migration 0004's indexes:

- outcome, from the state and whether an advisor served it: ``served``, ``bot`` (the
  assistant ended it), ``abandoned``, ``live``;
- intent, the bot's, from the ``handoff`` event (a partial expression index);
- advisor, anyone who accepted it (transfers included), from ``accepted`` events;
- duration, ``ended_at - created_at``;
- held, from the ledger's seal entries; verify status, from the last ``compliance_checks`` row:
  ``verified``, ``failed``, ``unchecked`` (sealed, never checked here), ``unsealed``;
- free text, through the full-text index (``fulltext``): each term a contact's chat must hold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.compliance import fulltext
from contact_center.db.models import (
    CHANNELS,
    ChatMessage,
    ComplianceCheck,
    Contact,
    ContactEvent,
    LedgerEntry,
    Role,
    User,
)

contacts = Contact.__table__  # type: ignore[attr-defined]
events = ContactEvent.__table__  # type: ignore[attr-defined]
messages = ChatMessage.__table__  # type: ignore[attr-defined]
checks = ComplianceCheck.__table__  # type: ignore[attr-defined]
ledger = LedgerEntry.__table__  # type: ignore[attr-defined]
users = User.__table__  # type: ignore[attr-defined]


class Outcome(StrEnum):
    SERVED = "served"
    BOT = "bot"
    ABANDONED = "abandoned"
    LIVE = "live"


class VerifyStatus(StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"
    UNCHECKED = "unchecked"
    UNSEALED = "unsealed"


#: What a customer field holding an id looks like: a customer ref or a contact id.
IDENTIFIER = re.compile(r"(?:user|guest):[A-Za-z0-9_-]{1,72}|[0-9a-f]{32}")

#: Sort keys whose column is never NULL (no "missing values last" term to defeat an index).
NEVER_NULL = frozenset({"started", "customer", "language"})

SortKey = Literal["started", "duration", "customer", "advisor", "language", "topic", "outcome"]


class SearchQuery(BaseModel):
    """The console's search form; every field optional, lists mean "any of"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    customer: str | None = Field(default=None, max_length=128)  # name, customer ref or contact id
    advisor: list[int] = Field(default_factory=list, max_length=20)  # user ids
    started_from: datetime | None = Field(default=None, alias="from")
    started_to: datetime | None = Field(default=None, alias="to")
    language: list[str] = Field(default_factory=list, max_length=10)
    topic: list[str] = Field(default_factory=list, max_length=20)
    intent: list[str] = Field(default_factory=list, max_length=20)
    channel: list[Literal["text", "voice", "video"]] = Field(default_factory=list)
    outcome: list[Outcome] = Field(default_factory=list)
    vip: bool | None = None
    min_duration_s: float | None = Field(default=None, ge=0)
    max_duration_s: float | None = Field(default=None, ge=0)
    held: bool | None = None
    verify: list[VerifyStatus] = Field(default_factory=list)
    q: str | None = Field(default=None, max_length=fulltext.MAX_QUERY_CHARS)
    sort: SortKey = "started"
    order: Literal["asc", "desc"] = "desc"
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=25, ge=1, le=100)

    @field_validator("started_from", "started_to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("customer", "q")
    @classmethod
    def _blank(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @classmethod
    def from_params(cls, params: Any) -> SearchQuery:
        """From a query string (``MultiDict``): repeated or comma-separated list values."""
        known = {info.alias or name for name, info in cls.model_fields.items()}
        unknown = sorted(set(params) - known)
        if unknown:
            raise fulltext.QueryError(f"unknown search field {unknown[0][:40]!r}")
        data: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            key = info.alias or name
            values = [v for raw in params.getall(key, []) for v in str(raw).split(",") if v != ""]
            if not values:
                continue
            origin = getattr(info.annotation, "__origin__", None)
            data[key] = values if origin is list else values[-1]
        return cls.model_validate(data)

    def filters(self) -> dict[str, Any]:
        """The filters given (for the audit row)."""
        return self.model_dump(
            mode="json", by_alias=True, exclude_defaults=True, exclude={"page", "per_page"}
        )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Sql:
    """The expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.postgres = dialect == "postgresql"

    def intent(self, alias: str) -> sa.ColumnElement[Any]:
        # Written as migration 0004's index is, so that the index answers.
        if self.postgres:
            return sa.literal_column(f"({alias}.data ->> 'intent')")
        return sa.literal_column(f"json_extract({alias}.data, '$.intent')")

    def duration(self) -> sa.ColumnElement[Any]:
        if self.postgres:
            return sa.func.extract("epoch", contacts.c.ended_at - contacts.c.created_at)
        # julianday is a float of days: rounded to the millisecond, 60 s is 60, not 59.99999
        days = sa.func.julianday(contacts.c.ended_at) - sa.func.julianday(contacts.c.created_at)
        return sa.func.round(days * 86400.0, 3)

    def _pg_condition(self, term: fulltext.Term, name: str) -> sa.TextClause:
        """PostgreSQL: ``chat_messages`` holds ``term`` (the GIN expression index answers)."""
        vector = "to_tsvector('simple'::regconfig, cc_search_text(chat_messages.text))"
        if term.prefix:
            return sa.text(f"{vector} @@ to_tsquery('simple'::regconfig, :{name})").bindparams(
                sa.bindparam(name, fulltext.prefix_tsquery(term))
            )
        if fulltext.only_cjk(term):
            # A phrase query makes PostgreSQL recheck every line holding the characters,
            # recomputing its tsvector (the index keeps no positions): for a common word that
            # was 2 s on 100,000 contacts. The index finds the lines with all the characters,
            # and the word itself is looked for in their text, much cheaper than a tsvector.
            return sa.text(
                f"{vector} @@ to_tsquery('simple'::regconfig, :{name})"
                f" AND chat_messages.text LIKE :{name}_like ESCAPE '\\'"
            ).bindparams(
                sa.bindparam(name, " & ".join(term.words)),
                sa.bindparam(f"{name}_like", _like("".join(term.words))),
            )
        return sa.text(
            f"{vector} @@ phraseto_tsquery('simple'::regconfig, cc_search_text(:{name}))"
        ).bindparams(sa.bindparam(name, term.text))

    def text_match(self, term: fulltext.Term, name: str) -> sa.ColumnElement[bool]:
        """``contacts.id`` is a contact with a chat line holding ``term``."""
        if self.postgres:
            sub: Any = (
                sa.select(messages.c.contact_id)
                .where(self._pg_condition(term, name))
            )
            return contacts.c.id.in_(sub)
        sub = sa.text(
            f"SELECT chat_search.contact_id FROM chat_search WHERE chat_search MATCH :{name}"
        ).bindparams(sa.bindparam(name, fulltext.fts5_query(term)))
        return contacts.c.id.in_(sub.columns(sa.column("contact_id")))

    def matching_lines(self, terms: list[fulltext.Term], ids: Sequence[str]) -> sa.Select[Any]:
        """The chat lines of ``ids`` that hold any of ``terms``."""
        cols = [
            messages.c.contact_id,
            messages.c.seq,
            messages.c.at,
            messages.c.sender_role,
            messages.c.text,
        ]
        if self.postgres:
            hits = [self._pg_condition(term, f"line_q{i}") for i, term in enumerate(terms)]
            return sa.select(*cols).where(messages.c.contact_id.in_(ids), sa.or_(*hits))
        expression = " OR ".join(fulltext.fts5_query(term) for term in terms)
        sub = (
            sa.text(
                "SELECT chat_search.rowid AS id FROM chat_search WHERE chat_search MATCH :line_q"
            )
            .bindparams(sa.bindparam("line_q", expression))
            .columns(sa.column("id"))
        )
        return sa.select(*cols).where(messages.c.contact_id.in_(ids), messages.c.id.in_(sub))


def outcome_expression() -> sa.ColumnElement[Any]:
    state = contacts.c.state
    return sa.case(
        (state == "abandoned", sa.literal(Outcome.ABANDONED.value)),
        (
            sa.and_(state.in_(["ended", "wrap_up"]), contacts.c.advisor_id.is_not(None)),
            sa.literal(Outcome.SERVED.value),
        ),
        (state == "ended", sa.literal(Outcome.BOT.value)),
        else_=sa.literal(Outcome.LIVE.value),
    )


def _sealed() -> sa.Exists:
    return sa.exists().where(ledger.c.contact_id == contacts.c.id, ledger.c.kind == "seal")


def _held() -> sa.Exists:
    return sa.exists().where(
        ledger.c.contact_id == contacts.c.id, ledger.c.kind == "seal", ledger.c.held.is_(True)
    )


def _last_check(column: sa.Column[Any]) -> sa.ScalarSelect[Any]:
    return (
        sa.select(column)
        .where(checks.c.contact_id == contacts.c.id)
        .order_by(checks.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def verify_expression() -> sa.ColumnElement[Any]:
    last = _last_check(checks.c.ok)
    return sa.case(
        (~_sealed(), sa.literal(VerifyStatus.UNSEALED.value)),
        (last.is_(None), sa.literal(VerifyStatus.UNCHECKED.value)),
        (last.is_(True), sa.literal(VerifyStatus.VERIFIED.value)),
        else_=sa.literal(VerifyStatus.FAILED.value),
    )


async def core_execute(session: AsyncSession, statement: Any) -> Any:
    """A Core statement on the session's connection (sqlmodel's ``execute`` is for ORM rows)."""
    return await (await session.connection()).execute(statement)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions(query: SearchQuery, sql: _Sql, terms: list[fulltext.Term]) -> list[Any]:
    """The WHERE clauses of ``query``."""
    where: list[Any] = []
    if query.customer and IDENTIFIER.fullmatch(query.customer):
        # A customer or contact id: both indexed. With the name's LIKE in an OR, every
        # contact is read (200 ms on 100,000 on SQLite, bench/search.py), and no name is an id.
        where.append(
            sa.or_(contacts.c.id == query.customer, contacts.c.customer_ref == query.customer)
        )
    elif query.customer:
        where.append(contacts.c.customer_name.ilike(_like(query.customer), escape="\\"))
    if query.advisor:
        refs = [f"user:{user_id}" for user_id in query.advisor]
        served = sa.select(events.c.contact_id).where(
            events.c.kind == "accepted", events.c.actor.in_(refs)
        )
        where.append(contacts.c.id.in_(served))
    if query.started_from is not None:
        where.append(contacts.c.created_at >= query.started_from)
    if query.started_to is not None:
        where.append(contacts.c.created_at < query.started_to)
    if query.language:
        where.append(contacts.c.language.in_(query.language))
    if query.topic:
        where.append(contacts.c.topic.in_(query.topic))
    if query.intent:
        handoff = sa.select(events.c.contact_id).where(
            events.c.kind == "handoff", sql.intent("contact_events").in_(query.intent)
        )
        where.append(contacts.c.id.in_(handoff))
    if query.channel:
        text = sa.cast(contacts.c.channels, sa.Text)
        where.append(sa.or_(*(text.like(f'%"{channel}"%') for channel in query.channel)))
    if query.outcome:
        where.append(outcome_expression().in_([o.value for o in query.outcome]))
    if query.vip is not None:
        where.append(contacts.c.vip.is_(query.vip))
    if query.min_duration_s is not None:
        where.append(sql.duration() >= query.min_duration_s)
    if query.max_duration_s is not None:
        where.append(sql.duration() <= query.max_duration_s)
    if query.held is not None:
        where.append(_held() if query.held else ~_held())
    if query.verify:
        where.append(verify_expression().in_([v.value for v in query.verify]))
    for index, term in enumerate(terms):
        where.append(sql.text_match(term, f"q{index}"))
    return where


def _advisor_name() -> sa.ScalarSelect[Any]:
    return (
        sa.select(users.c.display_name).where(users.c.id == contacts.c.advisor_id).scalar_subquery()
    )


def _order(query: SearchQuery, sql: _Sql) -> list[Any]:
    key: Any = {
        "started": contacts.c.created_at,
        "duration": sql.duration(),
        "customer": sa.func.lower(contacts.c.customer_name),
        "advisor": sa.func.lower(_advisor_name()),
        "language": contacts.c.language,
        "topic": contacts.c.topic,
        "outcome": outcome_expression(),
    }[query.sort]
    direction = key.desc() if query.order == "desc" else key.asc()
    stable = contacts.c.id.desc() if query.order == "desc" else contacts.c.id
    if query.sort in NEVER_NULL:
        return [direction, stable]  # so that ix_contacts_created_at gives the order
    # Missing values (no advisor, still live) last either way; then a stable order.
    return [key.is_(None), direction, stable]


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _iso(value: datetime | None) -> str | None:
    value = _utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


async def search(session: AsyncSession, query: SearchQuery) -> dict[str, Any]:
    """One page of contacts matching ``query``, with the total; ``QueryError`` for bad text."""
    sql = _Sql((await session.connection()).dialect.name)
    terms = fulltext.parse(query.q) if query.q else []
    where = conditions(query, sql, terms)
    total = (
        await core_execute(session, sa.select(sa.func.count()).select_from(contacts).where(*where))
    ).scalar_one()
    last_seal = (
        sa.select(ledger.c.status)
        .where(ledger.c.contact_id == contacts.c.id, ledger.c.kind == "seal")
        .order_by(ledger.c.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    intent = (
        sa.select(sql.intent("e"))
        .select_from(events.alias("e"))
        .where(
            sa.literal_column("e.contact_id") == contacts.c.id,
            sa.literal_column("e.kind") == "handoff",
        )
        .order_by(sa.literal_column("e.id").desc())
        .limit(1)
        .scalar_subquery()
    )
    # Two steps: the page's ids first (filters, order and offset on the contacts alone), then
    # the columns shown for those ids only. In one statement the correlated subqueries below
    # would be evaluated for every matching row before the sort (SQLite always does so).
    ordered = (
        sa.select(contacts.c.id)
        .where(*where)
        .order_by(*_order(query, sql))
        .limit(query.per_page)
        .offset((query.page - 1) * query.per_page)
    )
    ids = list((await core_execute(session, ordered)).scalars().all())
    page = sa.select(
        contacts.c.id,
        contacts.c.created_at,
        contacts.c.ended_at,
        contacts.c.customer_ref,
        contacts.c.customer_name,
        contacts.c.channels,
        contacts.c.language,
        contacts.c.topic,
        contacts.c.vip,
        contacts.c.state,
        contacts.c.advisor_id,
        sql.duration().label("duration_s"),
        outcome_expression().label("outcome"),
        intent.label("intent"),
        verify_expression().label("verify"),
        _last_check(checks.c.checked_at).label("checked_at"),
        _held().label("held"),
        last_seal.label("seal_status"),
        _advisor_name().label("advisor_name"),
    ).where(contacts.c.id.in_(ids))
    found = {row["id"]: row for row in (await core_execute(session, page)).mappings().all()}
    rows = [found[contact_id] for contact_id in ids if contact_id in found]
    served = await advisors_of(session, ids)
    lines = await _first_lines(session, sql, terms, ids) if terms else {}
    results = []
    for row in rows:
        results.append(
            {
                "id": row["id"],
                "started_at": _iso(row["created_at"]),
                "ended_at": _iso(row["ended_at"]),
                "duration_s": _seconds(row["duration_s"]),
                "customer": {"ref": row["customer_ref"], "name": row["customer_name"]},
                "advisors": served.get(row["id"], []),
                "channels": list(row["channels"] or []),
                "language": row["language"],
                "topic": row["topic"],
                "intent": row["intent"],
                "vip": bool(row["vip"]),
                "state": row["state"],
                "outcome": row["outcome"],
                "verify": row["verify"],
                "checked_at": _iso(row["checked_at"]),
                "held": bool(row["held"]),
                "seal": row["seal_status"],
                "match": lines.get(row["id"]),
            }
        )
    return {
        "total": int(total),
        "page": query.page,
        "per_page": query.per_page,
        "pages": max(1, -(-int(total) // query.per_page)),
        "sort": query.sort,
        "order": query.order,
        "highlight": fulltext.highlights(terms),
        "results": results,
    }


async def advisors_of(session: AsyncSession, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Who accepted each contact, in order (a transfer adds a second)."""
    if not ids:
        return {}
    rows = (
        await core_execute(
            session,
            sa.select(events.c.contact_id, events.c.actor, users.c.id, users.c.display_name)
            .select_from(
                events.outerjoin(
                    users, events.c.actor == sa.literal("user:") + sa.cast(users.c.id, sa.String)
                )
            )
            .where(events.c.kind == "accepted", events.c.contact_id.in_(ids))
            .order_by(events.c.at, events.c.id),
        )
    ).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for contact_id, actor, user_id, name in rows:
        seen = out.setdefault(contact_id, [])
        if all(a["ref"] != actor for a in seen):
            seen.append({"ref": actor, "id": user_id, "name": name or actor})
    return out


async def _first_lines(
    session: AsyncSession, sql: _Sql, terms: list[fulltext.Term], ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = (await core_execute(session, sql.matching_lines(terms, ids))).all()
    first: dict[str, dict[str, Any]] = {}
    for contact_id, seq, at, sender, text in sorted(rows, key=lambda r: (r[0], r[1])):
        first.setdefault(
            contact_id, {"seq": seq, "at": _iso(at), "sender": sender, "text": text[:300]}
        )
    return first


async def facets(session: AsyncSession) -> dict[str, Any]:
    """What the search form offers: advisors, languages, topics, intents and the fixed lists."""
    sql = _Sql((await session.connection()).dialect.name)
    advisors = (
        await core_execute(
            session,
            sa.select(users.c.id, users.c.display_name, users.c.username)
            .where(users.c.role == Role.ADVISOR.value)
            .order_by(sa.func.lower(users.c.display_name)),
        )
    ).all()
    languages = (
        (await core_execute(session, sa.select(contacts.c.language).distinct())).scalars().all()
    )
    topics = (
        (
            await core_execute(
                session, sa.select(contacts.c.topic).where(contacts.c.topic.is_not(None)).distinct()
            )
        )
        .scalars()
        .all()
    )
    intent = sql.intent("contact_events")
    intents = (
        (
            await core_execute(
                session,
                sa.select(intent).where(events.c.kind == "handoff", intent.is_not(None)).distinct(),
            )
        )
        .scalars()
        .all()
    )
    return {
        "advisors": [
            {"id": a.id, "name": a.display_name, "username": a.username} for a in advisors
        ],
        "languages": sorted(languages),
        "topics": sorted(topics),
        "intents": sorted(str(i) for i in intents),
        "channels": list(CHANNELS),
        "outcomes": [o.value for o in Outcome],
        "verify": [v.value for v in VerifyStatus],
    }
