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
from contact_center.contacts import store
from contact_center.contacts.recording import Recordings
from contact_center.contacts.states import ContactState
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, ContactEvent, Role
from contact_center.errors import Forbidden
from contact_center.identity import audit
from contact_center.identity.auth import Identity
from contact_center.media.call import MediaHub
from contact_center.protocol import ChatMessage, OfferPush, SessionState
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


def now_utc() -> datetime:
    return datetime.now(UTC)


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class Waiting:
    """A queued contact whose customer is connected here: we push its queue position."""

    customer_ref: str
    last: tuple[int, int] | None = None
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

    def __post_init__(self) -> None:
        if self.recordings is None:
            self.recordings = Recordings(
                db=self.db,
                redis=self.redis,
                media=self.media,
                instance_id=self.instance_id,
                root=self.recordings_dir,
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
        async with transaction(self.db) as session:
            contact = await store.get_contact(session, contact_id=contact_id)
        allowed = contact is not None and (
            (identity.role is Role.CUSTOMER and contact.customer_ref == identity.ref)
            or (
                identity.role is Role.ADVISOR
                and identity.user_id is not None
                and contact.advisor_id == identity.user_id
            )
        )
        if not allowed:
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
        refs = [contact.customer_ref]
        if contact.advisor_id is not None:
            refs.append(advisor_ref(agent_id_of(contact.advisor_id)))
        await self.bus.publish_many(refs, message)

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

    async def history(self, contact_id: str) -> list[dict[str, Any]]:
        async with transaction(self.db) as session:
            lines = await store.chat_history(session, contact_id=contact_id)
        return [
            {"seq": m.seq, "sender": m.sender_role, "text": m.text, "at": m.at.isoformat()}
            for m in lines
        ]

    async def replay_chat(self, ref: str, contact_id: str) -> None:
        async with transaction(self.db) as session:
            lines = await store.chat_history(session, contact_id=contact_id)
        for m in lines:
            await self.bus.publish(
                ref,
                ChatMessage(
                    contact_id=contact_id,
                    seq=m.seq,
                    sender=m.sender_role,
                    text=m.text,
                    at=m.at,
                ),
            )

    async def send_offer(
        self, contact_id: str, agent_id: str, explanation: dict[str, Any] | None = None
    ) -> None:
        try:
            status = await self.router.contact_status(contact_id)
        except UnknownContactError:
            return
        if status.state is not RouterContactState.OFFERED or status.agent_id != agent_id:
            return  # taken back (expired, rejected, cancelled) before we got to it
        async with transaction(self.db) as session:
            contact = await store.get_contact(session, contact_id=contact_id)
        if contact is None or status.deadline is None:
            return
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
                explanation=explanation or {},
                media_url=await self.media_url_of(contact),
            ),
        )

    async def media_url_of(self, contact: Contact) -> str | None:
        """The WebSocket URL of the instance that holds ``contact``'s media."""
        if contact.instance is None or contact.instance == self.instance_id:
            return self.media_url
        url = await self.redis.hget(redis_keys.INSTANCES, contact.instance)
        return str(url) if url else None
