"""The WebSocket endpoint: authenticate first, then commands; one writer task per connection.

Each frame is parsed into one protocol model, checked against the sender's role, handled, and
answered with ``ack`` or ``error``. A bad frame never ends the connection; a flood or a client
that does not read (its bounded send queue fills) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp_session import get_session
from pydantic import ValidationError

from contact_center import keys, rkeys
from contact_center.auth import Identity, current_identity, identity_from_session, require_role
from contact_center.errors import CLIENT_CAUSED, ClientError, Forbidden, RateLimited, to_error
from contact_center.lifecycle import ContactState
from contact_center.models import Role
from contact_center.protocol import (
    MAX_FRAME_BYTES,
    Ack,
    AgentStatus,
    ChatSend,
    ChatTyping,
    Error,
    Hello,
    OfferAccept,
    OfferReject,
    RtcAnswer,
    RtcCandidate,
    RtcOffer,
    SessionEnd,
    SessionResume,
    SessionStart,
    SessionTransfer,
    SessionUpgrade,
    Welcome,
    WrapupDone,
    client_message_adapter,
)
from contact_center.sessions import SessionService

log = logging.getLogger(__name__)

SESSIONS: web.AppKey[SessionService] = web.AppKey("sessions")
CONNECTIONS: web.AppKey[set[Connection]] = web.AppKey("connections")
CLEANUPS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("ws_cleanups")
PRESENCE: web.AppKey[PresenceLocks] = web.AppKey("presence_locks")
BOT: web.AppKey[Any] = web.AppKey("bot")

HELLO_TIMEOUT_S = 10.0
WS_TOKEN_TTL_S = 60
#: Frames beyond the protocol limit but below this are answered with an error; larger ones
#: make aiohttp close the connection (1009) before we could read them.
HARD_FRAME_LIMIT = 1024 * 1024
FLOOD_CLOSE_AFTER = 200
CLEANUP_TIMEOUT_S = 15.0

CUSTOMER = frozenset({Role.CUSTOMER})
ADVISOR = frozenset({Role.ADVISOR})
PARTIES = CUSTOMER | ADVISOR


class PresenceLocks:
    """One lock per person: a quick reconnect waits until the old socket's clean-up is done,
    so that the grace period it starts is seen (and cancelled) by the new connection."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, ref: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(ref, (asyncio.Lock(), 0))
        self._locks[ref] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[ref]
            if users == 1:
                del self._locks[ref]
            else:
                self._locks[ref] = (lock, users - 1)


class TokenBucket:
    """Allows ``rate`` messages a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Connection:
    """One WebSocket: a bounded outbox drained by a single writer task."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, *, queue_size: int) -> None:
        self.ws = ws
        self.request = request
        self.identity: Identity | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self._writer: asyncio.Task[None] | None = None
        self.overflowed = False
        self.media_only = False

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name="ws-writer")

    def deliver(self, frame: str) -> None:
        """Queue a frame; a client too slow to keep up is disconnected, not buffered forever."""
        if self.overflowed:
            return
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True
            who = self.identity.ref if self.identity else "anonymous"
            log.warning(
                "websocket send queue full: disconnecting a slow client", extra={"who": who}
            )
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    def send(self, message: Any) -> None:
        self.deliver(message.model_dump_json())

    async def _write(self) -> None:
        while True:
            frame = await self._outbox.get()
            try:
                await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return

    async def close(self, code: int = 1000, message: str = "") -> None:
        if self._writer is not None:
            # let what is queued go out first (briefly), then stop the writer
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while not self._outbox.empty() and not self.ws.closed:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if not self.ws.closed:
            await self.ws.close(code=code, message=message.encode())


Handler = Callable[[SessionService, Connection, Any], Awaitable[dict[str, Any]]]


async def _start(svc: SessionService, conn: Connection, msg: SessionStart) -> dict[str, Any]:
    assert conn.identity is not None
    bot = conn.request.app.get(BOT)
    if bot is not None and not msg.skip_bot:
        contact = await bot.start(conn.identity, msg)
    else:
        contact = await svc.start(
            conn.identity, channels=msg.channels, language=msg.language, topic=msg.topic
        )
    return {
        "contact_id": contact.id,
        "state": contact.state,
        "resume_token": await svc.resume_token(contact.id),
    }


async def _resume(svc: SessionService, conn: Connection, msg: SessionResume) -> dict[str, Any]:
    assert conn.identity is not None
    contact = await svc.resume(conn.identity, msg.resume_token)
    return {"contact_id": contact.id, "state": contact.state}


async def _chat(svc: SessionService, conn: Connection, msg: ChatSend) -> dict[str, Any]:
    assert conn.identity is not None
    contact = await svc.contact_for(conn.identity, msg.contact_id)  # refuses and audits
    bot = conn.request.app.get(BOT)
    if bot is not None and contact.state == ContactState.BOT:
        handled = await bot.customer_message(conn.identity, msg.contact_id, msg.text)
        if handled is not None:
            return {"seq": handled}
        contact = await svc.contact_for(conn.identity, msg.contact_id)  # handed off meanwhile
    return {"seq": await svc.chat_on(conn.identity, contact, msg.text)}


async def _typing(svc: SessionService, conn: Connection, msg: ChatTyping) -> dict[str, Any]:
    assert conn.identity is not None
    await svc.typing(conn.identity, msg.contact_id)
    return {}


async def _rtc_offer(svc: SessionService, conn: Connection, msg: RtcOffer) -> dict[str, Any]:
    assert conn.identity is not None
    answer = await svc.rtc_offer(conn.identity, msg.contact_id, msg.sdp)
    conn.send(RtcAnswer(contact_id=msg.contact_id, sdp=answer))
    return {}


async def _rtc_candidate(
    svc: SessionService, conn: Connection, msg: RtcCandidate
) -> dict[str, Any]:
    """A trickled candidate of the client (the server itself answers with all of its own)."""
    assert conn.identity is not None
    await svc.rtc_candidate(
        conn.identity, msg.contact_id, msg.candidate, msg.sdp_mid, msg.sdp_mline_index
    )
    return {}


async def _upgrade(svc: SessionService, conn: Connection, msg: SessionUpgrade) -> dict[str, Any]:
    assert conn.identity is not None
    return {"agreed": await svc.upgrade(conn.identity, msg.contact_id, msg.channel)}


async def _end(svc: SessionService, conn: Connection, msg: SessionEnd) -> dict[str, Any]:
    assert conn.identity is not None
    contact = await svc.end(conn.identity, msg.contact_id)
    return {"state": contact.state}


async def _agent_status(svc: SessionService, conn: Connection, msg: AgentStatus) -> dict[str, Any]:
    assert conn.identity is not None
    return {"state": await svc.set_agent_status(conn.identity, msg.status)}


async def _accept(svc: SessionService, conn: Connection, msg: OfferAccept) -> dict[str, Any]:
    assert conn.identity is not None
    contact = await svc.accept(conn.identity, msg.contact_id)
    return {
        "contact_id": contact.id,
        "state": contact.state,
        "channels": contact.channels,
        "language": contact.language,
        "transcript": await svc.history(contact.id),
        "media_url": await svc.media_url_of(contact),
    }


async def _reject(svc: SessionService, conn: Connection, msg: OfferReject) -> dict[str, Any]:
    assert conn.identity is not None
    await svc.reject(conn.identity, msg.contact_id)
    return {}


async def _transfer(svc: SessionService, conn: Connection, msg: SessionTransfer) -> dict[str, Any]:
    assert conn.identity is not None
    contact = await svc.transfer(
        conn.identity, msg.contact_id, skills=dict(msg.skills), language=msg.language
    )
    return {"state": contact.state}


async def _wrapup(svc: SessionService, conn: Connection, msg: WrapupDone) -> dict[str, Any]:
    assert conn.identity is not None
    return {"ended": await svc.wrapup_done(conn.identity, msg.contact_id)}


#: type -> (roles allowed, handler). One table: what each role may say.
DISPATCH: dict[str, tuple[frozenset[Role], Handler]] = {
    "session.start": (CUSTOMER, _start),
    "session.resume": (CUSTOMER, _resume),
    "chat.send": (PARTIES, _chat),
    "chat.typing": (PARTIES, _typing),
    "rtc.offer": (PARTIES, _rtc_offer),
    "rtc.candidate": (PARTIES, _rtc_candidate),
    "session.upgrade": (PARTIES, _upgrade),
    "session.end": (PARTIES, _end),
    "agent.status": (ADVISOR, _agent_status),
    "offer.accept": (ADVISOR, _accept),
    "offer.reject": (ADVISOR, _reject),
    "session.transfer": (ADVISOR, _transfer),
    "wrapup.done": (ADVISOR, _wrapup),
}


def _request_id(raw: str) -> str | None:
    """The ``id`` of a frame, when one can be read, so that even errors can refer to it."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


async def _authenticate(request: web.Request, conn: Connection, first: str) -> Identity:
    """The first frame must be ``hello``; the cookie session or its token says who this is."""
    try:
        message = client_message_adapter.validate_json(first)
    except ValidationError as exc:
        raise ClientError(to_error(exc)[1], code=to_error(exc)[0]) from None
    if not isinstance(message, Hello):
        raise Forbidden("say hello first", code="unauthenticated")
    identity = await current_identity(request)
    if message.token:
        stored = await request.app[keys.REDIS].getdel(rkeys.ws_token(message.token))
        if stored is None:
            raise Forbidden("this token is unknown, used or expired", code="unauthenticated")
        identity = identity_from_session(json.loads(stored))
    if identity is None:
        raise Forbidden("sign in (or open the start page) first", code="unauthenticated")
    conn.media_only = message.media_only
    conn.send(Ack(ref=message.id))
    return identity


async def websocket(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    settings = app[keys.SETTINGS]
    svc = app[SESSIONS]
    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT, heartbeat=30)
    await ws.prepare(request)
    conn = Connection(ws, request, queue_size=settings.ws_send_queue)
    conn.start()
    app[CONNECTIONS].add(conn)
    bus = svc.bus
    try:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                first = await ws.receive()
        except TimeoutError:
            conn.send(Error(code="unauthenticated", message="no hello within 10 s"))
            return ws
        if first.type is not WSMsgType.TEXT:
            return ws
        try:
            identity = await _authenticate(request, conn, first.data)
        except ClientError as exc:
            conn.send(Error(ref=_request_id(first.data), code=exc.code, message=str(exc)))
            return ws
        conn.identity = identity
        conn.send(
            Welcome(user=identity.ref, role=identity.role.value, display_name=identity.display_name)
        )
        if not conn.media_only:
            async with app[PRESENCE].hold(identity.ref):
                first_here = not bus.has_local(identity.ref)
                bus.attach(identity.ref, conn)
                if identity.role is Role.CUSTOMER:
                    await svc.customer_connected(identity)
                elif identity.role is Role.ADVISOR and first_here:
                    await svc.advisor_connected(identity)
        await _serve(svc, conn, settings.ws_rate_per_s, settings.ws_burst)
    finally:
        # aiohttp cancels the handler when the peer vanishes: the clean-up runs in a task of
        # its own (awaited on shutdown) so that a lost connection still loses nothing.
        cleanup = asyncio.create_task(_after_close(svc, conn), name="ws-cleanup")
        cleanups: set[asyncio.Task[None]] = app[CLEANUPS]
        cleanups.add(cleanup)
        cleanup.add_done_callback(cleanups.discard)
        await asyncio.shield(cleanup)
    return ws


async def _after_close(svc: SessionService, conn: Connection) -> None:
    conn.request.app[CONNECTIONS].discard(conn)
    try:
        if conn.identity is not None and not conn.media_only:
            ref = conn.identity.ref
            async with conn.request.app[PRESENCE].hold(ref):
                svc.bus.detach(ref, conn)
                if not svc.bus.has_local(ref):
                    async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                        await _disconnected(svc, conn.identity)
    except TimeoutError:
        log.error("clean-up after %s took over %s s", conn.identity, CLEANUP_TIMEOUT_S)
    finally:
        await conn.close()


async def _disconnected(svc: SessionService, identity: Identity) -> None:
    try:
        if identity.role is Role.CUSTOMER:
            await svc.customer_disconnected(identity)
        elif identity.role is Role.ADVISOR:
            await svc.advisor_disconnected(identity)
    except Exception:
        log.exception("after disconnect of %s", identity.ref)


async def _serve(svc: SessionService, conn: Connection, rate: float, burst: int) -> None:
    assert conn.identity is not None
    bucket = TokenBucket(rate, burst)
    refused = 0
    async for frame in conn.ws:
        if frame.type is WSMsgType.BINARY:
            conn.send(Error(code="bad_frame", message="frames are JSON text, not binary"))
            continue
        if frame.type is not WSMsgType.TEXT:
            break
        raw: str = frame.data
        if not bucket.take():
            refused += 1
            if refused >= FLOOD_CLOSE_AFTER:
                conn.send(Error(code="rate_limited", message="too many messages: disconnecting"))
                await conn.close(1008, "flood")
                return
            if refused % 10 == 1:
                conn.send(
                    Error(
                        ref=_request_id(raw),
                        code=RateLimited.code,
                        message="slow down: message dropped",
                    )
                )
            continue
        if len(raw.encode()) > MAX_FRAME_BYTES:
            conn.send(
                Error(
                    ref=_request_id(raw),
                    code="frame_too_large",
                    message=f"frames are limited to {MAX_FRAME_BYTES // 1024} KiB",
                )
            )
            continue
        await _handle(svc, conn, raw)


async def _handle(svc: SessionService, conn: Connection, raw: str) -> None:
    assert conn.identity is not None
    ref = _request_id(raw)
    try:
        message = client_message_adapter.validate_json(raw)
        if isinstance(message, Hello):
            conn.send(Ack(ref=message.id, data={"already": True}))
            return
        roles, handler = DISPATCH[message.type]
        if conn.identity.role not in roles:
            raise Forbidden(
                f"{message.type} is not for {conn.identity.role.value} accounts", code="forbidden"
            )
        data = await handler(svc, conn, message)
        conn.send(Ack(ref=message.id, data=data))
    except Exception as exc:  # one bad request must not end the connection or the server
        if not isinstance(exc, CLIENT_CAUSED):
            log.exception("handling %s", raw[:200])
        code, text = to_error(exc)
        conn.send(Error(ref=ref, code=code, message=text))


@require_role(
    Role.CUSTOMER, Role.ADVISOR, Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN, allow_guest=True
)
async def ws_token(request: web.Request) -> web.Response:
    """A single-use token valid for a minute, for clients that cannot send the cookie."""
    session = await get_session(request)
    token = secrets.token_urlsafe(32)
    snapshot = {k: session.get(k) for k in ("ref", "uid", "role", "name", "vip")}
    await request.app[keys.REDIS].set(
        rkeys.ws_token(token), json.dumps(snapshot), ex=WS_TOKEN_TTL_S
    )
    return web.json_response({"token": token, "expires_in": WS_TOKEN_TTL_S})


async def close_all(app: web.Application) -> None:
    """On shutdown: tell every client and close (1001 going away)."""
    connections: set[Connection] = app[CONNECTIONS]
    for conn in list(connections):
        with contextlib.suppress(Exception):
            await conn.close(1001, "server shutting down")
    cleanups: set[asyncio.Task[None]] = app[CLEANUPS]
    if cleanups:
        _, pending = await asyncio.wait(list(cleanups), timeout=CLEANUP_TIMEOUT_S)
        for task in pending:
            log.error("a connection clean-up did not finish at shutdown: cancelling it")
            task.cancel()


def setup(app: web.Application) -> None:
    app[CONNECTIONS] = set()
    app[CLEANUPS] = set()
    app[PRESENCE] = PresenceLocks()
    app.router.add_get("/ws", websocket)
    app.router.add_post("/api/ws-token", ws_token)
    app.on_shutdown.append(close_all)
