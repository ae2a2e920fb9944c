"""Open WebSockets follow the sign-in they were opened with.

A socket outlives the request that opened it, so ending a session (sign-out, a disabled
account, a new password, the staff idle timeout) must also reach the sockets of that session,
on whichever instance they are. One task per instance looks at its sockets every ``SWEEP_S``:
a socket whose client sent something since the last look counts as activity (it pushes the
idle deadline back, as a request does); a socket whose session is gone is told and closed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from contact_center import appkeys
from contact_center.background import Loops
from contact_center.errors import ErrorCode
from contact_center.protocol import Error

log = logging.getLogger(__name__)

SWEEP_S = 5.0
#: The close code of a socket whose session ended (4000-4999: for applications).
SESSION_ENDED = 4401


async def sweep(app: web.Application) -> int:
    """Close the sockets whose session has ended; returns how many."""
    store = app[appkeys.SESSIONS]
    watched = [
        (conn, conn.identity)
        for conn in app[appkeys.CONNECTIONS]
        if conn.identity is not None and conn.identity.session_id is not None
    ]
    active = [(conn, who) for conn, who in watched if conn.active]
    idle = [(conn, who) for conn, who in watched if not conn.active]
    for conn, _ in active:
        conn.active = False
    touched = await asyncio.gather(*(store.touch(str(who.session_id), who.role) for _, who in active))
    alive = await store.alive([str(who.session_id) for _, who in idle])
    ended = [conn for (conn, _), record in zip(active, touched, strict=True) if record is None]
    ended += [conn for (conn, _), ok in zip(idle, alive, strict=True) if not ok]
    for conn in ended:
        conn.send(Error(code=ErrorCode.UNAUTHENTICATED, message="your session ended: sign in again"))
    await asyncio.gather(*(conn.close(SESSION_ENDED, "session ended") for conn in ended))
    return len(ended)


async def _sweep_and_log(app: web.Application) -> None:
    closed = await sweep(app)
    if closed:
        log.info("closed %d sockets whose session ended", closed)


async def sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    loops = Loops()
    loops.every(SWEEP_S, functools.partial(_sweep_and_log, app), "session sweep")
    try:
        yield
    finally:
        await loops.stop(within_s=5)
