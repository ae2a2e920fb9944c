"""What every job of the contact service shares: its parts, access checks, the frames it sends.

The database holds each contact's state and history (every transition an event row with its
actor); the router (Redis) holds who waits for whom; the bus carries notices to whichever
instance holds each party's WebSocket. The jobs (``intake``, ``presence``, ``assignment``,
``chat``, ``upgrades``, ``calls``, ``ending``) each add their methods to ``ContactCore``;
``service.ContactService`` is all of them. They are called by the WebSocket handlers with an
authenticated identity and raise ``ClientError``s that become error frames.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import redis_keys
from contact_center.bus import Bus
from contact_center.config import DEFAULT_WRAPUP_OUTCOMES
from contact_center.contacts import store
from contact_center.contacts.chat_writer import DEFAULT_MAX_PENDING, ChatWriter
from contact_center.contacts.recording import Recordings
from contact_center.contacts.states import ContactState
from contact_center.db.engine import reading, transaction
from contact_center.db.models import Contact, ContactEvent, Role
from contact_center.errors import Forbidden
from contact_center.identity import audit
from contact_center.identity.auth import Identity
from contact_center.identity.users import display_names
from contact_center.media.call import MediaHub
from contact_center.protocol import ChatMessage, ContactFacts, OfferPush, SessionState
from routing.errors import UnknownContactError
from routing.models import Channel, ContactRequest
from routing.models import ContactState as RouterContactState
from routing.store import RouterStore

log = logging.getLogger(__name__)

#: A topic chosen by the customer becomes a required skill at this minimum proficiency.
TOPIC_MIN_PROFICIENCY = 2
TOPICS = ("cards", "fx", "remittance", "loans", "investments", "accounts", "complaints", "general")
CHANNEL_RANK = {Channel.TEXT: 0, Channel.VOICE: 1, Channel.VIDEO: 2}
POSITION_PUSH_EVERY_S = 10.0
RESUME_TOKEN_TTL_S = 24 * 3600


def primary_channel(channels: list[Channel] | list[str]) -> Channel:
    """The richest medium asked for: it decides which capacity the contact takes."""
    return max((Channel(c) for c in channels), key=CHANNEL_RANK.__getitem__)


def skills_for_topic(topic: str | None) -> dict[str, int]:
    if not topic or topic == "general" or topic not in TOPICS:
        return {"general": 1}
    return {topic: TOPIC_MIN_PROFICIENCY}


def agent_id_of(user_id: int) -> str:
    return str(user_id)


def advisor_ref(agent_id: str) -> str:
    return f"user:{agent_id}"


def other_party_ref(contact: Contact, party: str) -> str:
    """The ref of the party of ``contact`` that is not ``party`` ("customer" or "advisor")."""
    if party == "advisor":
        return contact.customer_ref
    return advisor_ref(agent_id_of(contact.advisor_id or 0))


def now_utc() -> datetime:
    return datetime.now(UTC)


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _aware(value: datetime) -> datetime:
    """SQLite gives back naive datetimes: every time we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def user_id_of_ref(ref: str) -> int | None:
    """The user id in a person ref ``user:<id>`` (advisors, signed-in customers), else None."""
    kind, _, rest = ref.partition(":")
    return int(rest) if kind == "user" and rest.isdigit() else None


def facts_from(contact: Contact, events: list[ContactEvent], *, now: datetime) -> ContactFacts:
    """The facts an advisor is shown, from the contact and its event rows (oldest first)."""
    intent: str | None = None
    note: str | None = None
    note_by: str | None = None
    queued_at = _aware(contact.created_at)
    connected_at: datetime | None = None
    for event in events:
        if event.kind == "handoff" and event.data.get("intent"):
            intent = str(event.data["intent"])
        if event.kind == "transferred":  # the latest transfer's note is the one for now
            note = str(event.data["note"]) if event.data.get("note") else None
            note_by = str(event.data.get("from_advisor_name") or "") or None
        # An offer that came back keeps the wait going; the bot, a transfer or a lost advisor
        # start a new one.
        if event.to_state == ContactState.QUEUED and event.from_state != ContactState.OFFERED:
            queued_at, connected_at = _aware(event.at), None
        elif event.to_state == ContactState.CONNECTED:
            connected_at = _aware(event.at)
    until = connected_at if connected_at is not None else now
    return ContactFacts(
        customer_name=contact.customer_name or "Guest",
        guest=contact.customer_ref.startswith("guest:"),
        vip=contact.vip,
        priority=contact.priority,
        language=contact.language,
        topic=contact.topic,
        intent=intent,
        skills=contact.skills,
        waiting_s=round(max(0.0, (until - queued_at).total_seconds()), 1),
        transfer_note=note,
        transferred_by=note_by,
    )


def named_explanation(explanation: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """The router's explanation with each advisor's display name beside their agent id."""

    def named(part: Any) -> Any:
        if not isinstance(part, dict) or "agent_id" not in part:
            return part
        agent = str(part["agent_id"])
        return {**part, "name": names.get(int(agent)) if agent.isdigit() else None}

    out = dict(explanation)
    if "winner" in out:
        out["winner"] = named(out["winner"])
    if isinstance(out.get("candidates"), list):
        out["candidates"] = [named(c) for c in out["candidates"]]
    return out


def explanation_agent_ids(explanation: dict[str, Any]) -> set[int]:
    parts = [explanation.get("winner"), *(explanation.get("candidates") or [])]
    ids = {str(p.get("agent_id")) for p in parts if isinstance(p, dict)}
    return {int(i) for i in ids if i.isdigit()}


@dataclass
class Waiting:
    """A queued contact whose customer is connected here: we push its queue position."""

    customer_ref: str
    last: tuple[int, int, bool] | None = None  # position, wait, staffed
    pushed_at: float = 0.0


class WaitingList:
    """Queued contacts whose customer is connected to this instance: their position is pushed."""

    def __init__(self) -> None:
        self._by_contact: dict[str, Waiting] = {}

    def watch(self, contact_id: str, customer_ref: str, *, keep: bool = False) -> None:
        """Start pushing positions to ``customer_ref`` (``keep``: leave an existing entry be)."""
        if keep and contact_id in self._by_contact:
            return
        self._by_contact[contact_id] = Waiting(customer_ref=customer_ref)

    def forget(self, contact_id: str) -> None:
        self._by_contact.pop(contact_id, None)

    def __iter__(self) -> Iterator[tuple[str, Waiting]]:
        """A snapshot: the list may change while positions are pushed."""
        return iter(list(self._by_contact.items()))

    def __contains__(self, contact_id: object) -> bool:
        return contact_id in self._by_contact

    def __len__(self) -> int:
        return len(self._by_contact)


def is_party(identity: Identity, contact: Contact) -> bool:
    """Whether ``identity`` is ``contact``'s customer or its advisor now."""
    if identity.role is Role.CUSTOMER:
        return contact.customer_ref == identity.ref
    return (
        identity.role is Role.ADVISOR
        and identity.user_id is not None
        and contact.advisor_id == identity.user_id
    )


def parties_of(contact: Contact) -> list[str]:
    """The refs of ``contact``'s customer and, once it has one, its advisor."""
    refs = [contact.customer_ref]
    if contact.advisor_id is not None:
        refs.append(advisor_ref(agent_id_of(contact.advisor_id)))
    return refs


@dataclass
class Grace:
    """Seconds a party may be gone before we act for them."""

    customer_s: float = 60.0
    advisor_s: float = 60.0


@dataclass
class ContactCore:
    """The parts every job uses, and the helpers more than one job needs."""

    db: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    router: RouterStore
    bus: Bus
    media: MediaHub
    instance_id: str
    media_url: str
    grace: Grace = field(default_factory=Grace)
    recordings_dir: Path | None = None
    waiting: WaitingList = field(default_factory=WaitingList)
    recordings: Recordings = field(default=None)  # type: ignore[assignment]
    """Built from ``recordings_dir`` when not given (``server.contexts`` gives one)."""
    wrapup_outcomes: tuple[str, ...] = DEFAULT_WRAPUP_OUTCOMES
    """The outcome codes a wrap-up may record (``CC_WRAPUP_OUTCOMES``)."""
    chat_max_pending: int = DEFAULT_MAX_PENDING
    """Chat lines waiting to be stored beyond which one more is refused ``busy``."""
    chat_writer: ChatWriter = field(init=False)

    def __post_init__(self) -> None:
        if self.recordings is None:
            self.recordings = Recordings(
                db=self.db,
                redis=self.redis,
                media=self.media,
                instance_id=self.instance_id,
                root=self.recordings_dir,
            )
        self.chat_writer = ChatWriter(
            self.db, self.recordings, self.bus, parties_of, max_pending=self.chat_max_pending
        )

    @contextlib.asynccontextmanager
    async def tx(self, *, defer: list[ContactEvent] | None = None) -> AsyncIterator[AsyncSession]:
        """A transaction whose contact events (``store.add_event``) are appended to their
        contacts' timelines once it is committed, before anyone is told of them; with
        ``defer``, they are put in that list for the caller to append a little later."""
        async with transaction(self.db) as session:
            yield session
            events = list(session.info.pop(store.TIMELINE_EVENTS, []))
        if defer is not None:
            defer.extend(events)
            return
        for event in events:
            await self.recordings.add_event(event)

    async def contact_for(self, identity: Identity, contact_id: str) -> Contact:
        """The contact, if ``identity`` is one of its parties; otherwise refuse and audit."""
        async with reading(self.db) as session:
            contact = await store.get_contact(session, contact_id=contact_id)
        if contact is None or not is_party(identity, contact):
            await audit.record(
                self.db,
                actor=identity.ref,
                action="access.denied",
                target=f"contact:{contact_id}",
                detail={"role": identity.role.value},
            )
            # Same answer whether it exists or not: ids are not to be probed.
            raise Forbidden(f"contact {contact_id} is not yours")
        assert contact is not None
        return contact

    async def facts_of(self, contact: Contact) -> ContactFacts:
        """What the advisor's offer and panel show about ``contact``."""
        async with reading(self.db) as session:
            events = await store.events_of(session, contact_id=contact.id)
        return facts_from(contact, events, now=now_utc())

    async def advisor_name_of(self, contact: Contact) -> str | None:
        """The display name of the advisor who has ``contact``, if any."""
        if contact.advisor_id is None:
            return None
        async with reading(self.db) as session:
            names = await display_names(session, user_ids={contact.advisor_id})
        return names.get(contact.advisor_id)

    def state_message(
        self, contact: Contact, *, reason: str | None = None, **extra: Any
    ) -> SessionState:
        return SessionState(
            contact_id=contact.id,
            state=contact.state,
            reason=reason,
            channels=[Channel(c) for c in contact.channels],
            at=now_utc(),
            **extra,
        )

    async def notify_parties(self, contact: Contact, message: Any) -> None:
        await self.bus.publish_many(parties_of(contact), message)

    async def resume_token(self, contact_id: str) -> str | None:
        token = await self.redis.get(redis_keys.resume_of(contact_id))
        return str(token) if token is not None else None

    async def enqueue(self, contact: Contact) -> None:
        """Give a contact to the router; its customer, connected here, is told its position."""
        self.waiting.watch(contact.id, contact.customer_ref)
        await self.router.enqueue(
            ContactRequest(
                id=contact.id,
                channel=primary_channel(contact.channels),
                language=contact.language,
                skills=contact.skills,
                priority=contact.priority,
                vip=contact.vip,
                enqueued_at=contact.created_at.timestamp(),
            )
        )

    async def back_to_queue(
        self,
        contact_id: str,
        *,
        actor: str,
        kind: str,
        reason: str,
        data: dict[str, Any],
        values: dict[str, Any] | None = None,
    ) -> Contact:
        """A connected contact goes back to the queue (transfer, advisor gone): its call ends and
        its customer is told and watched. The caller tells the router how to queue it."""
        async with self.tx() as session:
            _, contact = await store.transition(
                session,
                contact_id=contact_id,
                to=ContactState.QUEUED,
                actor=actor,
                kind=kind,
                data=data,
                values={**(values or {}), "advisor_id": None},
            )
        await self.media.close_call(contact_id)
        await self.bus.publish(contact.customer_ref, self.state_message(contact, reason=reason))
        self.waiting.watch(contact_id, contact.customer_ref)
        return contact

    async def chat_frames(self, contact_id: str) -> list[ChatMessage]:
        """The contact's chat as frames; advisors' lines carry who wrote them."""
        async with transaction(self.db) as session:
            lines = await store.chat_history(session, contact_id=contact_id)
            advisor_ids = {
                uid
                for m in lines
                if m.sender_role == "advisor" and (uid := user_id_of_ref(m.sender_ref)) is not None
            }
            names = await display_names(session, user_ids=advisor_ids)
        frames = []
        for m in lines:
            uid = user_id_of_ref(m.sender_ref) if m.sender_role == "advisor" else None
            frames.append(
                ChatMessage(
                    contact_id=contact_id,
                    seq=m.seq,
                    sender=m.sender_role,
                    text=m.text,
                    at=_aware(m.at),
                    sender_name=names.get(uid) if uid is not None else None,
                    sender_ref=m.sender_ref if m.sender_role == "advisor" else None,
                )
            )
        return frames

    async def history(self, contact_id: str) -> list[dict[str, Any]]:
        return [
            frame.model_dump(
                mode="json", include={"seq", "sender", "text", "at", "sender_name", "sender_ref"}
            )
            for frame in await self.chat_frames(contact_id)
        ]

    async def replay_chat(self, ref: str, contact_id: str) -> None:
        for frame in await self.chat_frames(contact_id):
            await self.bus.publish(ref, frame)

    async def send_offer(
        self, contact_id: str, agent_id: str, explanation: dict[str, Any] | None = None
    ) -> None:
        try:
            status = await self.router.contact_status(contact_id)
        except UnknownContactError:
            return
        if status.state is not RouterContactState.OFFERED or status.agent_id != agent_id:
            return  # taken back (expired, rejected, cancelled) before we got to it
        if status.deadline is None:
            return
        explanation = explanation or {}
        async with transaction(self.db) as session:  # one read for the contact and its facts
            contact = await store.get_contact(session, contact_id=contact_id)
            if contact is None:
                return
            names = await display_names(session, user_ids=explanation_agent_ids(explanation))
            events = await store.events_of(session, contact_id=contact_id)
        await self.bus.publish(
            advisor_ref(agent_id),
            OfferPush(
                contact_id=contact_id,
                channels=[Channel(c) for c in contact.channels],
                language=contact.language,
                skills=contact.skills,
                priority=contact.priority,
                expires_at=_ts(status.deadline),
                topic=contact.topic,
                transcript=await self.history(contact_id),
                explanation=named_explanation(explanation, names),
                media_url=await self.media_url_of(contact),
                facts=facts_from(contact, events, now=now_utc()),
            ),
        )

    async def media_url_of(self, contact: Contact) -> str | None:
        """The WebSocket URL of the instance that holds ``contact``'s media."""
        if contact.instance is None or contact.instance == self.instance_id:
            return self.media_url
        url = await self.redis.hget(redis_keys.INSTANCES, contact.instance)
        return str(url) if url else None
