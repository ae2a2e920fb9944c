"""One handler per client request, keyed by the request's model class.

A handler gets the contact service, the connection (whose identity is set and whose role the
endpoint has checked against the model's ``roles``) and the parsed message; it returns the
model's ``result_model``, which the endpoint sends as the ``ack``'s ``data``. Business rules
live in ``contacts``; what is here is only the choice between the bot and the queue.

To add a message: its model in ``contact_center.protocol``, its handler here, in ``HANDLERS``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from contact_center import appkeys
from contact_center.contacts.chat import ContactWithBot
from contact_center.contacts.service import ContactService
from contact_center.contacts.states import ContactState
from contact_center.errors import ClientError, ErrorCode, NotFound, RateLimited
from contact_center.identity.auth import Identity
from contact_center.protocol import (
    AcceptResult,
    AgentStatusRequest,
    ChatResult,
    ChatSend,
    ChatTyping,
    MediaStateReport,
    OfferAccept,
    OfferReject,
    RecordingPause,
    RecordingResult,
    RecordingResume,
    RecordingStatePush,
    Result,
    ResumeResult,
    RtcAnswer,
    RtcCandidate,
    RtcOffer,
    SessionDowngrade,
    SessionEnd,
    SessionLeaveMessage,
    SessionResume,
    SessionStart,
    SessionTransfer,
    SessionUpgrade,
    SessionUpgradeDecline,
    StartResult,
    StateResult,
    UpgradeResult,
    WrapupDone,
    WrapupResult,
)
from contact_center.ws.connection import Connection
from routing.models import Channel

Handler = Callable[[ContactService, Connection, Any], Awaitable[Result]]

#: Requests whose handler is idempotent by itself, so the endpoint does not reserve their id in
#: Redis first (``ws.idempotency``): a chat line keeps its request id in the database, and a
#: retry (with the bot too) is answered with the stored line, never stored or answered twice.
STORE_IDEMPOTENT: frozenset[type] = frozenset({ChatSend})


def _who(conn: Connection) -> Identity:
    assert conn.identity is not None, "the endpoint dispatches only after hello"
    return conn.identity


async def _start(svc: ContactService, conn: Connection, msg: SessionStart) -> StartResult:
    identity, address = _who(conn), conn.request.remote
    quota = conn.request.app[appkeys.GUEST_QUOTA]
    if identity.guest:
        wait = await quota.take(address)
        if wait:
            if (earlier := await _started_before(svc, identity, msg)) is not None:
                return earlier
            raise RateLimited(
                "too many new conversations from your network; "
                f"try again in {math.ceil(wait / 60)} min"
            )
    bot = conn.request.app.get(appkeys.BOT)
    try:
        if bot is not None and not msg.skip_bot:
            contact = await bot.start(identity, msg)
        else:
            contact = await svc.start(
                identity, channels=msg.channels, language=msg.language, topic=msg.topic,
                request_id=msg.id,
            )
    except Exception as exc:
        if identity.guest:
            await quota.give_back(address)
        if isinstance(exc, ClientError) and exc.code == ErrorCode.ALREADY_STARTED and (
            earlier := await _started_before(svc, identity, msg)
        ) is not None:
            return earlier
        raise
    return StartResult(
        contact_id=contact.id, state=contact.state, resume_token=await svc.resume_token(contact.id)
    )


async def _started_before(
    svc: ContactService, identity: Identity, msg: SessionStart
) -> StartResult | None:
    """A retry of a start whose first answer was lost (its instance killed, Redis down): the
    contact that first try created, looked for only when this one is refused."""
    earlier = await svc.started_by(identity, msg.id)
    if earlier is None:
        return None
    return StartResult(
        contact_id=earlier.id, state=earlier.state, resume_token=await svc.resume_token(earlier.id)
    )


async def _resume(svc: ContactService, conn: Connection, msg: SessionResume) -> ResumeResult:
    contact = await svc.resume(_who(conn), msg.resume_token)
    return ResumeResult(contact_id=contact.id, state=contact.state)


async def _chat(svc: ContactService, conn: Connection, msg: ChatSend) -> ChatResult:
    identity = _who(conn)
    try:  # refuses and audits a contact that is not the sender's
        return ChatResult(seq=await svc.chat(identity, msg.contact_id, msg.text, request_id=msg.id))
    except ContactWithBot:
        bot = conn.request.app.get(appkeys.BOT)
        if bot is None:
            raise
        handled = await bot.customer_message(identity, msg.contact_id, msg.text, request_id=msg.id)
    if handled is not None:
        return ChatResult(seq=handled)
    # handed off meanwhile
    return ChatResult(seq=await svc.chat(identity, msg.contact_id, msg.text, request_id=msg.id))


async def _typing(svc: ContactService, conn: Connection, msg: ChatTyping) -> Result:
    await svc.typing(_who(conn), msg.contact_id)
    return Result()


async def _rtc_offer(svc: ContactService, conn: Connection, msg: RtcOffer) -> Result:
    answer = await svc.rtc_offer(_who(conn), msg.contact_id, msg.sdp)
    conn.send(RtcAnswer(contact_id=msg.contact_id, sdp=answer))
    voice = conn.request.app.get(appkeys.VOICE)
    if voice is not None:  # listens only while the bot has the contact
        await voice.media_started(_who(conn), msg.contact_id)
    return Result()


async def _rtc_candidate(svc: ContactService, conn: Connection, msg: RtcCandidate) -> Result:
    """A trickled candidate of the client (the server itself answers with all of its own)."""
    await svc.rtc_candidate(
        _who(conn), msg.contact_id, msg.candidate, msg.sdp_mid, msg.sdp_mline_index
    )
    return Result()


async def _upgrade(svc: ContactService, conn: Connection, msg: SessionUpgrade) -> UpgradeResult:
    return UpgradeResult(agreed=await svc.upgrade(_who(conn), msg.contact_id, msg.channel))


async def _decline_upgrade(
    svc: ContactService, conn: Connection, msg: SessionUpgradeDecline
) -> Result:
    await svc.decline_upgrade(_who(conn), msg.contact_id, Channel(msg.channel))
    return Result()


async def _downgrade(
    svc: ContactService, conn: Connection, msg: SessionDowngrade
) -> StateResult:
    await svc.downgrade(_who(conn), msg.contact_id, Channel(msg.to))
    return StateResult(state=ContactState.CONNECTED)


async def _media_state(svc: ContactService, conn: Connection, msg: MediaStateReport) -> Result:
    await svc.media_state(_who(conn), msg)
    return Result()


async def _leave_message(
    svc: ContactService, conn: Connection, msg: SessionLeaveMessage
) -> StateResult:
    contact = await svc.leave_message(
        _who(conn), msg.contact_id, text=msg.text, callback=msg.callback, phone=msg.phone,
        request_id=msg.id,
    )
    return StateResult(state=contact.state)


async def _end(svc: ContactService, conn: Connection, msg: SessionEnd) -> StateResult:
    contact = await svc.end(_who(conn), msg.contact_id)
    return StateResult(state=contact.state)


async def _agent_status(
    svc: ContactService, conn: Connection, msg: AgentStatusRequest
) -> StateResult:
    return StateResult(state=await svc.set_agent_status(_who(conn), msg.status))


@contextlib.contextmanager
def _no_offer_hides_the_contact(contact_id: str) -> Iterator[None]:
    """Without an offer of it, a contact that exists (in whatever state) and one that does not
    get the same answer: the state of someone else's contact is not for this advisor to learn.
    (An offer of theirs that expired still says so.)"""
    try:
        yield
    except ClientError as exc:
        if exc.code != ErrorCode.INVALID_STATE:
            raise
        raise NotFound(f"no offer of contact {contact_id} for you") from None


async def _accept(svc: ContactService, conn: Connection, msg: OfferAccept) -> AcceptResult:
    with _no_offer_hides_the_contact(msg.contact_id):
        contact = await svc.accept(_who(conn), msg.contact_id)
    return AcceptResult(
        contact_id=contact.id,
        state=contact.state,
        channels=contact.channels,
        language=contact.language,
        transcript=await svc.history(contact.id),
        media_url=await svc.media_url_of(contact),
        facts=await svc.facts_of(contact),
    )


async def _reject(svc: ContactService, conn: Connection, msg: OfferReject) -> Result:
    with _no_offer_hides_the_contact(msg.contact_id):
        await svc.reject(_who(conn), msg.contact_id)
    return Result()


async def _transfer(svc: ContactService, conn: Connection, msg: SessionTransfer) -> StateResult:
    contact = await svc.transfer(
        _who(conn), msg.contact_id, skills=dict(msg.skills), language=msg.language,
        note=msg.note, queue_anyway=msg.queue_anyway,
    )
    return StateResult(state=contact.state)


async def _wrapup(svc: ContactService, conn: Connection, msg: WrapupDone) -> WrapupResult:
    ended, recorded = await svc.wrapup_done(
        _who(conn), msg.contact_id, outcome=msg.outcome, notes=msg.notes
    )
    return WrapupResult(ended=ended, recorded=recorded)


def _recording_result(state: RecordingStatePush) -> RecordingResult:
    return RecordingResult(paused=state.paused, pause_id=state.pause_id, resume_at=state.resume_at)


async def _pause(svc: ContactService, conn: Connection, msg: RecordingPause) -> RecordingResult:
    return _recording_result(await svc.pause_recording(_who(conn), msg.contact_id, msg.reason))


async def _resume_recording(
    svc: ContactService, conn: Connection, msg: RecordingResume
) -> RecordingResult:
    return _recording_result(await svc.resume_recording(_who(conn), msg.contact_id))


#: Request class -> handler. Who may send each is the model's ``roles``.
HANDLERS: dict[type[Any], Handler] = {
    SessionStart: _start,
    SessionResume: _resume,
    ChatSend: _chat,
    ChatTyping: _typing,
    RtcOffer: _rtc_offer,
    RtcCandidate: _rtc_candidate,
    SessionUpgrade: _upgrade,
    SessionUpgradeDecline: _decline_upgrade,
    SessionDowngrade: _downgrade,
    MediaStateReport: _media_state,
    SessionLeaveMessage: _leave_message,
    SessionEnd: _end,
    AgentStatusRequest: _agent_status,
    OfferAccept: _accept,
    OfferReject: _reject,
    SessionTransfer: _transfer,
    WrapupDone: _wrapup,
    RecordingPause: _pause,
    RecordingResume: _resume_recording,
}
