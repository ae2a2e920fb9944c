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

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from contact_center import appkeys, redis_keys
from contact_center.contacts.service import ContactService
from contact_center.db.models import Role
from contact_center.errors import (
    ClientError,
    ErrorCode,
    Forbidden,
    RateLimited,
    is_client_caused,
    to_error,
)
from contact_center.identity.auth import Identity, current_identity, identity_from_session
from contact_center.protocol import (
    MAX_FRAME_BYTES,
    Ack,
    Error,
    Hello,
    Welcome,
    client_message_adapter,
)
from contact_center.ws import tokens
from contact_center.ws.connection import Connection, PresenceLocks, TokenBucket
from contact_center.ws.handlers import HANDLERS
from recordings.redact import mask_card_numbers

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
#: Frames beyond the protocol limit but below this are answered with an error; larger ones
#: make aiohttp close the connection (1009) before we could read them.
HARD_FRAME_LIMIT = 1024 * 1024
FLOOD_CLOSE_AFTER = 200
CLEANUP_TIMEOUT_S = 15.0


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
        raise Forbidden("say hello first", code=ErrorCode.UNAUTHENTICATED)
    identity = await current_identity(request)
    if message.token:
        stored = await request.app[appkeys.REDIS].getdel(redis_keys.ws_token(message.token))
        if stored is None:
            raise Forbidden("this token is unknown, used or expired", code=ErrorCode.UNAUTHENTICATED)
        identity = identity_from_session(json.loads(stored))
    if identity is None:
        raise Forbidden("sign in (or open the start page) first", code=ErrorCode.UNAUTHENTICATED)
    conn.media_only = message.media_only
    conn.send(Ack(ref=message.id))
    return identity


async def websocket(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    settings = app[appkeys.SETTINGS]
    svc = app[appkeys.CONTACTS]
    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT, heartbeat=30)
    await ws.prepare(request)
    conn = Connection(ws, request, queue_size=settings.ws_send_queue)
    conn.start()
    app[appkeys.CONNECTIONS].add(conn)
    bus = svc.bus
    try:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                first = await ws.receive()
        except TimeoutError:
            conn.send(Error(code=ErrorCode.UNAUTHENTICATED, message="no hello within 10 s"))
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
            async with app[appkeys.PRESENCE].hold(identity.ref):
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
        cleanups: set[asyncio.Task[None]] = app[appkeys.CLEANUPS]
        cleanups.add(cleanup)
        cleanup.add_done_callback(cleanups.discard)
        await asyncio.shield(cleanup)
    return ws


async def _after_close(svc: ContactService, conn: Connection) -> None:
    conn.request.app[appkeys.CONNECTIONS].discard(conn)
    try:
        if conn.identity is not None and not conn.media_only:
            ref = conn.identity.ref
            async with conn.request.app[appkeys.PRESENCE].hold(ref):
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
        if identity.role is Role.CUSTOMER:
            await svc.customer_disconnected(identity)
        elif identity.role is Role.ADVISOR:
            await svc.advisor_disconnected(identity)
    except Exception:
        log.exception("after disconnect of %s", identity.ref)


async def _serve(svc: ContactService, conn: Connection, rate: float, burst: int) -> None:
    assert conn.identity is not None
    bucket = TokenBucket(rate, burst)
    refused = 0
    async for frame in conn.ws:
        if frame.type is WSMsgType.BINARY:
            conn.send(Error(code=ErrorCode.BAD_FRAME, message="frames are JSON text, not binary"))
            continue
        if frame.type is not WSMsgType.TEXT:
            break
        raw: str = frame.data
        if not bucket.take():
            refused += 1
            if refused >= FLOOD_CLOSE_AFTER:
                conn.send(Error(code=ErrorCode.RATE_LIMITED, message="too many messages: disconnecting"))
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
                    code=ErrorCode.FRAME_TOO_LARGE,
                    message=f"frames are limited to {MAX_FRAME_BYTES // 1024} KiB",
                )
            )
            continue
        await _handle(svc, conn, raw)


async def _handle(svc: ContactService, conn: Connection, raw: str) -> None:
    assert conn.identity is not None
    ref = _request_id(raw)
    try:
        message = client_message_adapter.validate_json(raw)
        if isinstance(message, Hello):
            conn.send(Ack(ref=message.id, data={"already": True}))
            return
        if conn.identity.role not in message.roles:
            raise Forbidden(
                f"{message.type} is not for {conn.identity.role.value} accounts", code=ErrorCode.FORBIDDEN
            )
        result = await HANDLERS[type(message)](svc, conn, message)
        conn.send(Ack(ref=message.id, data=result.model_dump(mode="json")))
    except Exception as exc:  # one bad request must not end the connection or the server
        if not is_client_caused(exc):
            # Masked before it is cut: a chat line may hold a card number.
            log.exception("handling %s", mask_card_numbers(raw)[:200])
        code, text = to_error(exc)
        conn.send(Error(ref=ref, code=code, message=text))


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
    app.router.add_get("/ws", websocket)
    app.router.add_post("/api/ws-token", tokens.ws_token)
    app.on_shutdown.append(close_all)
