"""How long sealed recordings are kept, legal holds, and the purge of what has expired.

Periods are written ``<N>y`` (calendar years), ``<N>m`` (calendar months) or ``<N>d`` (days),
e.g. ``7y``, ``6m``, ``400d`` (``years``/``months``/``days`` and spaces are accepted too). A
date that does not exist in the target month (29 February, 31 April) falls back to the last day
of that month. The default is 7 years, with per-topic overrides. Nothing shorter than 6 months
(``6m``, or ``183d`` as a day count) is accepted: ``RetentionTooShort`` names the value.

A legal hold needs a reason (at least ``MIN_REASON`` characters) and an actor; a held contact
is never purged. ``purge`` deletes the stored files of every sealed contact whose retention
has passed and that is not held, and appends a purge entry naming the files to the chain, so
``verify`` knows they are gone on purpose.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from recordings import ledger
from recordings.ledger import Db, LedgerEntry
from recordings.storage import LockedObject, Storage

__all__ = [
    "DEFAULT_POLICY",
    "MIN_REASON",
    "HoldError",
    "Period",
    "PurgeReport",
    "RetentionPolicy",
    "RetentionTooShort",
    "clear_hold",
    "parse_period",
    "purge",
    "retain_until",
    "set_hold",
]

MIN_REASON = 10
_PERIOD = re.compile(r"^\s*(\d+)\s*(y|years?|m|months?|d|days?)\s*$", re.IGNORECASE)


class RetentionTooShort(ValueError):
    """A retention period under the 6-month floor."""


class HoldError(ValueError):
    """A legal hold change without a proper reason or actor, or for an unknown contact."""


@dataclass(frozen=True)
class Period:
    """A calendar period: ``months`` (years are 12 months) or ``days``."""

    months: int = 0
    days: int = 0
    text: str = ""

    def after(self, start: datetime) -> datetime:
        """``start`` plus this period (the month's last day when the day does not exist)."""
        from datetime import timedelta

        total = start.month - 1 + self.months
        year, month = start.year + total // 12, total % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return start.replace(year=year, month=month, day=day) + timedelta(days=self.days)


def parse_period(text: str) -> Period:
    """``"7y"`` -> 84 months, ``"6m"`` -> 6 months, ``"400d"`` -> 400 days; refuses < 6 months."""
    match = _PERIOD.match(text)
    if not match:
        raise ValueError(f"bad retention period {text!r}: write e.g. 7y, 6m or 400d")
    number, unit = int(match.group(1)), match.group(2).lower()[0]
    period = (
        Period(months=12 * number, text=text.strip())
        if unit == "y"
        else Period(months=number, text=text.strip())
        if unit == "m"
        else Period(days=number, text=text.strip())
    )
    if (period.months and period.months < 6) or (not period.months and period.days < 183):
        raise RetentionTooShort(
            f"retention {text.strip()!r} is below the minimum of 6 months (183 days)"
        )
    return period


@dataclass(frozen=True)
class RetentionPolicy:
    """The default period and per-topic ones, validated when made."""

    default: Period = field(default_factory=lambda: parse_period("7y"))
    topics: dict[str, Period] = field(default_factory=dict)

    @classmethod
    def from_strings(
        cls, default: str = "7y", topics: dict[str, str] | None = None
    ) -> RetentionPolicy:
        return cls(
            default=parse_period(default),
            topics={topic: parse_period(value) for topic, value in (topics or {}).items()},
        )

    @classmethod
    def parse(cls, text: str) -> RetentionPolicy:
        """``"7y"`` or ``"7y; complaints=10y, sales=1y"`` (default first, then topic=period)."""
        parts = [part.strip() for part in re.split(r"[;,]", text) if part.strip()]
        default = "7y"
        topics: dict[str, str] = {}
        for part in parts:
            if "=" in part:
                topic, _, value = part.partition("=")
                topics[topic.strip()] = value.strip()
            else:
                default = part
        return cls.from_strings(default, topics)

    def period(self, topic: str | None) -> Period:
        return self.topics.get(topic or "", self.default)

    def retain_until(self, sealed_at: datetime, topic: str | None = None) -> datetime:
        return self.period(topic).after(sealed_at)


DEFAULT_POLICY = RetentionPolicy()


def retain_until(
    sealed_at: datetime, topic: str | None = None, policy: RetentionPolicy = DEFAULT_POLICY
) -> datetime:
    """When a contact sealed at ``sealed_at`` on ``topic`` may be purged."""
    return policy.retain_until(sealed_at, topic)


def _check(reason: str, actor: str) -> None:
    if len((reason or "").strip()) < MIN_REASON:
        raise HoldError(f"a legal hold change needs a reason of at least {MIN_REASON} characters")
    if not (actor or "").strip():
        raise HoldError("a legal hold change needs the actor")


async def _set_hold(db: Db, contact_id: str, held: bool, reason: str, actor: str) -> int:
    _check(reason, actor)
    table = LedgerEntry.__table__  # type: ignore[attr-defined]
    statement = (
        sa.update(table)
        .where(table.c.contact_id == contact_id, table.c.kind == "seal")
        .values(
            held=held,
            hold_reason=reason.strip(),
            held_by=actor.strip(),
            held_at=datetime.now(UTC),
        )
    )
    async with ledger._transaction(db) as session:
        result = await session.execute(statement)
    count = int(getattr(result, "rowcount", 0) or 0)
    if not count:
        raise HoldError(f"no sealed contact {contact_id!r}")
    return count


async def set_hold(db: Db, contact_id: str, *, reason: str, actor: str) -> int:
    """Put a contact under legal hold; returns the number of seal entries held."""
    return await _set_hold(db, contact_id, True, reason, actor)


async def clear_hold(db: Db, contact_id: str, *, reason: str, actor: str) -> int:
    """Lift a legal hold (the reason and actor of the release are kept on the entry)."""
    return await _set_hold(db, contact_id, False, reason, actor)


@dataclass
class PurgeReport:
    """What a purge did (or, dry run, would do)."""

    dry_run: bool
    purged: dict[str, list[str]] = field(default_factory=dict)  # contact -> files
    locked: list[str] = field(default_factory=list)  # messages naming file and date
    held: list[str] = field(default_factory=list)  # contacts skipped for a legal hold
    entries: list[int] = field(default_factory=list)  # purge entries appended (seq)


async def purge(
    db: Db,
    storage: Storage,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = "retention",
) -> PurgeReport:
    """Delete the files of expired, unheld sealed contacts; one purge entry per contact."""
    now = now or datetime.now(UTC)
    report = PurgeReport(dry_run=dry_run)
    purged_before: dict[str, set[str]] = {}
    seals: list[LedgerEntry] = []
    for entry in await ledger.entries(db):
        if entry.kind == "purge":
            purged_before.setdefault(entry.contact_id, set()).update(entry.detail.get("files", []))
        else:
            seals.append(entry)
    for entry in seals:
        if entry.retain_until is None or entry.retain_until > now:
            continue
        if entry.held:
            report.held.append(entry.contact_id)
            continue
        names = sorted(
            (set(storage.list(entry.contact_id)) | set(entry.locations))
            - purged_before.get(entry.contact_id, set())
        )
        if not names:
            continue
        if dry_run:
            report.purged[entry.contact_id] = names
            continue
        deleted: list[str] = []
        for name in names:
            try:
                storage.delete(entry.contact_id, name)
            except LockedObject as error:
                report.locked.append(str(error))
                continue
            except FileNotFoundError:
                continue  # never stored there (verify reports it if the manifest lists it)
            deleted.append(name)
        if deleted:
            report.purged[entry.contact_id] = deleted
            appended = await ledger.append_purge(
                db, contact_id=entry.contact_id, files=deleted, actor=actor
            )
            report.entries.append(appended.seq)
    return report
