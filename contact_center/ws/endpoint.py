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
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from contact_center import appkeys, metrics, redis_keys
from contact_center.config import origin_of
from contact_center.contacts.service import ContactService
from contact_center.db.models import Role
from contact_center.errors import (
    ClientError,
    ErrorCode,
    Forbidden,
    RateLimited,
    is_client_caused,
    service_down,
    to_error,
)
from contact_center.identity.auth import (
    PASSWORD_CHANGE_REQUIRED,
    Identity,
    current_identity,
    live_identity,
)
from contact_center.openapi import operation
from contact_center.protocol import (
    MAX_FRAME_BYTES,
    Ack,
    ClientMessage,
    Error,
    Hello,
    HelloResult,
    Welcome,
    client_message_adapter,
)
from contact_center.ws import frames, idempotency, sessions, tokens
from contact_center.ws.connection import Connection, PresenceLocks, TokenBucket
from contact_center.ws.handlers import HANDLERS, STORE_IDEMPOTENT
from recordings.redact import mask_card_numbers

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
#: Frames a client may send before a ``hello`` that stands; then it is disconnected.
HELLO_FRAMES = 5
#: Frames beyond the protocol limit but below this are answered with an error; larger ones
#: make aiohttp close the connection (1009) before we could read them.
HARD_FRAME_LIMIT = 1024 * 1024
FLOOD_CLOSE_AFTER = 200
#: chat lines of one connection waiting for the chat writer at once (see ``_read_frames``)
CHAT_IN_FLIGHT = 8
CLEANUP_TIMEOUT_S = 15.0
#: WebSocket close code "Try Again Later" (RFC 6455 registry): a service we need is down
WS_TRY_AGAIN_LATER = 1013


class _HelloRefused(Forbidden):
    """A hello whose cookie or token does not stand: trying again on this socket cannot help."""

    code = ErrorCode.UNAUTHENTICATED


def _parse(raw: str) -> ClientMessage:
    """One text frame as a message, or a ClientError with the code the client gets."""
    problem = frames.refusal(raw)
    if problem is not None:
        raise ClientError(problem, code=ErrorCode.BAD_FRAME)
    try:
        return client_message_adapter.validate_json(raw)
    except ValidationError as exc:
        code, text = to_error(exc)
        raise ClientError(text, code=code) from None


def _too_large(raw: str) -> Error | None:
    if len(raw) * 4 > MAX_FRAME_BYTES and len(raw.encode()) > MAX_FRAME_BYTES:
        return Error(
            ref=frames.request_id(raw),
            code=ErrorCode.FRAME_TOO_LARGE,
            message=f"frames are limited to {MAX_FRAME_BYTES // 1024} KiB",
        )
    return None


async def _authenticate(request: web.Request, conn: Connection, raw: str) -> Identity:
    """A ``hello``: the cookie session or its token says who this is."""
    message = _parse(raw)
    if not isinstance(message, Hello):
        raise Forbidden("say hello first", code=ErrorCode.UNAUTHENTICATED)
    identity = await current_identity(request)
    cookieless = bool(message.token or message.bank_token) or (message.guest and identity is None)
    if message.token:
        stored = await request.app[appkeys.REDIS].getdel(redis_keys.ws_token(message.token))
        if stored is None:
            raise _HelloRefused("this token is unknown, used or expired")
        identity = await live_identity(request.app, json.loads(stored))
    elif message.bank_token:
        try:
            identity = await tokens.bank_identity(request, message.bank_token)
        except Forbidden as exc:
            raise _HelloRefused(str(exc)) from None
    elif message.guest and identity is None:
        identity = tokens.new_guest()
    if identity is None:
        raise _HelloRefused("sign in (or open the start page) first")
    if identity.must_change_password:
        raise _HelloRefused(PASSWORD_CHANGE_REQUIRED)
    conn.media_only = message.media_only
    result = HelloResult()
    if cookieless:
        # No cookie will bring this client back after a drop: the next hello's token does.
        snapshot = tokens.snapshot_of(identity)
        result = HelloResult(
            rejoin_token=await tokens.mint(request, snapshot, ttl_s=tokens.REJOIN_TTL_S)
        )
    conn.send(Ack(ref=message.id, data=result.model_dump(exclude_none=True)))
    return identity


async def _hello(request: web.Request, conn: Connection) -> Identity | None:
    """Authenticate first: frames until a ``hello`` that stands, each bad one answered with an
    error (the connection stays), for at most ``HELLO_FRAMES`` frames and ``HELLO_TIMEOUT_S``."""
    try:
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            for _ in range(HELLO_FRAMES):
                frame = await conn.ws.receive()
                metrics.WS_FRAMES.labels("in").inc()
                if frame.type is WSMsgType.BINARY:
                    conn.send(Error(code=ErrorCode.BAD_FRAME, message="frames are JSON text, not binary"))
                    continue
                if frame.type is not WSMsgType.TEXT:
                    return None
                too_large = _too_large(frame.data)
                if too_large is not None:
                    conn.send(too_large)
                    continue
                try:
                    return await _authenticate(request, conn, frame.data)
                except ClientError as exc:
                    conn.send(Error(ref=frames.request_id(frame.data), code=exc.code, message=str(exc)))
                    if isinstance(exc, _HelloRefused):
                        return None
                except Exception as exc:
                    if service_down(exc) is None:
                        raise
                    await _refuse_for_now(conn, exc, frames.request_id(frame.data))
                    return None
    except TimeoutError:
        conn.send(Error(code=ErrorCode.UNAUTHENTICATED, message=f"no hello within {HELLO_TIMEOUT_S:.0f} s"))
        return None
    conn.send(
        Error(code=ErrorCode.UNAUTHENTICATED, message=f"no hello in {HELLO_FRAMES} frames: disconnecting")
    )
    await conn.close(1008, "no hello")
    return None


def check_origin(request: web.Request) -> None:
    """Refuse a socket opened by a page of another site (cross-site WebSocket hijacking).

    Browsers always send ``Origin`` with a WebSocket and attach our cookie whoever's page opens
    it; SameSite=Lax alone does not stop a same-site attacker. A client that sends no Origin is
    not a browser, so it holds the cookie or token it presents itself.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return
    allowed = request.app[appkeys.SETTINGS].websocket_origins
    if origin_of(origin) not in allowed:
        log.warning(
            "websocket from a foreign origin refused",
            extra={"origin": origin[:200], "remote": request.remote},
        )
        raise web.HTTPForbidden(text="This page may not open our WebSocket (Origin not allowed).")


@operation(
    "The signalling WebSocket", tag="signalling",
    description="Upgrade to a WebSocket; the first frame is `hello`. The messages are in "
    "docs/protocol.md. A browser's `Origin` must be CC_PUBLIC_BASE_URL's or one of "
    "CC_ALLOWED_ORIGINS.",
    responses={101: "Switching protocols", 403: "A page of another origin opened it"},
)
async def websocket(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    settings = app[appkeys.SETTINGS]
    svc = app[appkeys.CONTACTS]
    check_origin(request)
    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT, heartbeat=30)
    await ws.prepare(request)
    conn = Connection(ws, request, queue_size=settings.ws_send_queue)
    conn.start()
    app[appkeys.CONNECTIONS].add(conn)
    bus = svc.bus
    try:
        identity = await _hello(request, conn)
        if identity is None:
            return ws
        conn.identity = identity
        conn.send(
            Welcome(
                user=identity.ref,
                role=identity.role.value,
                display_name=identity.display_name,
                vip=identity.vip,
            )
        )
        if not conn.media_only:
            try:
                async with app[appkeys.PRESENCE].hold(identity.ref, svc.redis):
                    first_here = not bus.has_local(identity.ref)
                    bus.attach(identity.ref, conn)
                    await svc.mark_present(identity)
                    if identity.role is Role.CUSTOMER:
                        await svc.customer_connected(identity)
                    elif identity.role is Role.ADVISOR and first_here:
                        await svc.advisor_connected(identity)
                        await svc.remind_pending_wrapups(identity)
            except Exception as exc:
                if service_down(exc) is None:
                    raise
                await _refuse_for_now(conn, exc)  # the clean-up below undoes the half done
                return ws
        await _serve(svc, conn, settings.ws_rate_per_s, settings.ws_burst)
    finally:
        # aiohttp cancels the handler when the peer vanishes: the clean-up runs in a task of
        # its own (awaited on shutdown) so that a lost connection still loses nothing.
        cleanup = asyncio.create_task(_after_close(svc, conn), name="ws-cleanup")
        cleanups: set[asyncio.Task[None]] = app[appkeys.CLEANUPS]
        cleanups.add(cleanup)
        cleanup.add_done_callback(cleanups.discard)
        await asyncio.shield(cleanup)
    return ws


async def _refuse_for_now(conn: Connection, exc: Exception, ref: str | None = None) -> None:
    """The database or Redis is down while connecting: say so and close as "try again later"
    (1013), so that the client reconnects rather than takes the session for gone."""
    down = service_down(exc) or ""
    log.warning("websocket refused for now: %s", down, extra={"error": repr(exc)})
    conn.send(Error(ref=ref, code=ErrorCode.UNAVAILABLE, message=down))
    await conn.close(WS_TRY_AGAIN_LATER, "try again later")


async def _after_close(svc: ContactService, conn: Connection) -> None:
    conn.request.app[appkeys.CONNECTIONS].discard(conn)
    try:
        if conn.identity is not None and not conn.media_only:
            ref = conn.identity.ref
            async with conn.request.app[appkeys.PRESENCE].hold(ref, svc.redis):
                svc.bus.detach(ref, conn)
                if not svc.bus.has_local(ref):
                    async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                        await _disconnected(svc, conn.identity)
    except TimeoutError:
        log.error("clean-up after %s took over %s s", conn.identity, CLEANUP_TIMEOUT_S)
    finally:
        await conn.close()


async def _disconnected(svc: ContactService, identity: Identity) -> None:
    try:
        await svc.mark_absent(identity)
        if await svc.present_anywhere(identity.ref):
            return  # reconnected on another instance (under the same presence lock)
        if identity.role is Role.CUSTOMER:
            await svc.customer_disconnected(identity)
        elif identity.role is Role.ADVISOR:
            await svc.advisor_disconnected(identity)
    except Exception:
        log.exception("after disconnect of %s", identity.ref)


async def _serve(svc: ContactService, conn: Connection, rate: float, burst: int) -> None:
    lines: set[asyncio.Task[None]] = set()
    try:
        await _read_frames(svc, conn, rate, burst, lines)
    finally:
        if lines:  # stored all the same (the writer does not let go); only not answered
            await asyncio.wait(lines, timeout=CLEANUP_TIMEOUT_S)


async def _read_frames(
    svc: ContactService, conn: Connection, rate: float, burst: int, lines: set[asyncio.Task[None]]
) -> None:
    """Frames in order, each handled before the next is read, but for ``chat.send``: up to
    ``CHAT_IN_FLIGHT`` of a connection's lines wait for the chat writer at once (so they can
    share its transactions), in order (each is queued with the writer before the next frame
    is read); any other frame waits until they are answered."""
    assert conn.identity is not None
    bucket = TokenBucket(rate, burst)
    refused = 0
    async for frame in conn.ws:
        if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            break
        conn.active = True
        metrics.WS_FRAMES.labels("in").inc()
        # Every frame a client sends counts against its rate, binary ones included.
        if not bucket.take():
            refused += 1
            if refused >= FLOOD_CLOSE_AFTER:
                conn.send(Error(code=ErrorCode.RATE_LIMITED, message="too many messages: disconnecting"))
                await conn.close(1008, "flood")
                return
            if refused % 10 == 1:
                conn.send(
                    Error(
                        ref=frames.request_id(frame.data) if frame.type is WSMsgType.TEXT else None,
                        code=RateLimited.code,
                        message="slow down: message dropped",
                    )
                )
            continue
        if frame.type is WSMsgType.BINARY:
            conn.send(Error(code=ErrorCode.BAD_FRAME, message="frames are JSON text, not binary"))
            continue
        raw: str = frame.data
        too_large = _too_large(raw)
        if too_large is not None:
            conn.send(too_large)
            continue
        if frames.is_chat_send(raw):
            if len(lines) >= CHAT_IN_FLIGHT:
                await asyncio.wait(lines, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(_handle(svc, conn, raw), name="ws-chat-line")
            lines.add(task)
            task.add_done_callback(lines.discard)
            await asyncio.sleep(0)  # let it reach the writer's queue before the next frame
            continue
        if lines:
            await asyncio.wait(lines)
        await _handle(svc, conn, raw)


async def _handle(svc: ContactService, conn: Connection, raw: str) -> None:
    assert conn.identity is not None
    try:
        message = _parse(raw)
        if isinstance(message, Hello):
            conn.send(Ack(ref=message.id, data={"already": True}))
            return
        if conn.identity.role not in message.roles:
            raise Forbidden(
                f"{message.type} is not for {conn.identity.role.value} accounts", code=ErrorCode.FORBIDDEN
            )
    except Exception as exc:  # a bad frame must not end the connection or the server
        if not is_client_caused(exc):
            # Masked before it is cut: a chat line may hold a card number.
            _log_failure(exc, mask_card_numbers(raw)[:200])
        code, text = to_error(exc)
        conn.send(Error(ref=frames.request_id(raw), code=code, message=text))
        return
    await _handle_once(svc, conn, message, raw)


async def _handle_once(svc: ContactService, conn: Connection, message: Any, raw: str) -> None:
    """Run a request once per client id: a retry gets the first answer (``ws.idempotency``)."""
    assert conn.identity is not None
    who, request_id = conn.identity.ref, message.id
    if type(message) in STORE_IDEMPOTENT:
        await _handle_direct(svc, conn, message, raw)
        return
    try:
        first = await idempotency.begin(svc.redis, who, request_id)
    except ClientError as exc:
        conn.send(Error(ref=frames.request_id(raw), code=exc.code, message=str(exc)))
        return
    if first is not None:
        conn.deliver(first)
        return
    try:
        result = await HANDLERS[type(message)](svc, conn, message)
        answer: Ack | Error = Ack(ref=request_id, data=result.model_dump(mode="json"))
    except Exception as exc:  # one bad request must not end the connection or the server
        code, text = to_error(exc)
        answer = Error(ref=frames.request_id(raw), code=code, message=text)
        if not is_client_caused(exc):
            _log_failure(exc, raw[:200])
            await idempotency.forget(svc.redis, who, request_id)  # a retry runs it again
            conn.send(answer)
            return
    frame = answer.model_dump_json()
    await idempotency.finish(svc.redis, who, request_id, frame)
    conn.deliver(frame)


def _log_failure(exc: Exception, what: str) -> None:
    """Our failure: with its traceback, unless it is the database or Redis being down (one
    line each then: an outage must not bury the log in identical tracebacks)."""
    if service_down(exc) is not None:
        log.warning("handling %s: %r", what, exc)
    else:
        log.exception("handling %s", what)


async def _handle_direct(svc: ContactService, conn: Connection, message: Any, raw: str) -> None:
    """A request whose handler is idempotent by itself (``handlers.STORE_IDEMPOTENT``)."""
    try:
        result = await HANDLERS[type(message)](svc, conn, message)
    except Exception as exc:  # one bad request must not end the connection or the server
        if not is_client_caused(exc):
            _log_failure(exc, mask_card_numbers(raw)[:200])
        code, text = to_error(exc)
        conn.send(Error(ref=frames.request_id(raw), code=code, message=text))
        return
    conn.send(Ack(ref=message.id, data=result.model_dump(mode="json")))


async def close_all(app: web.Application) -> None:
    """On shutdown: tell every client and close (1001 going away)."""
    connections: set[Connection] = app[appkeys.CONNECTIONS]
    for conn in list(connections):
        with contextlib.suppress(Exception):
            await conn.close(1001, "server shutting down")
    cleanups: set[asyncio.Task[None]] = app[appkeys.CLEANUPS]
    if cleanups:
        _, pending = await asyncio.wait(list(cleanups), timeout=CLEANUP_TIMEOUT_S)
        for task in pending:
            log.error("a connection clean-up did not finish at shutdown: cancelling it")
            task.cancel()


def setup(app: web.Application) -> None:
    app[appkeys.CONNECTIONS] = set()
    app[appkeys.CLEANUPS] = set()
    app[appkeys.PRESENCE] = PresenceLocks()
    app.cleanup_ctx.append(sessions.sessions_ctx)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/api/ws-token", tokens.ws_token)
    app.on_shutdown.append(close_all)
