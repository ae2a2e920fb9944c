"""The heap the server holds once started, kept out of the garbage collector's full passes.

A full (oldest-generation) collection walks every container object of the process, and it
runs whenever the objects that survived younger collections grew by a quarter since the last
one. Once started, the server holds about 165,000 such objects (modules, the app, the caches
of SQLAlchemy, pydantic and jinja2, the routing policy...) that live as long as the process:
at 1,000 chat lines/s full passes took 90-185 ms, every 3-5 s, stalls of the event loop that
every line in flight waited out (the chat relay's p99; BENCHMARKS.md, "Signalling").
``gc.freeze()`` once the server is up moves them into a permanent generation that no
collection walks; they stay alive, as they would anyway, and whatever is allocated
afterwards (sessions, contacts, lines) is collected as before.
"""

from __future__ import annotations

import gc
import logging
import time

from aiohttp import web

log = logging.getLogger(__name__)


async def freeze_after_start(_app: web.Application) -> None:
    """An ``on_startup`` handler, after every context has started (``cleanup_ctx`` runs
    first). The start-up's garbage is collected first: frozen garbage would never be freed."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "heap frozen",
        extra={
            "objects": gc.get_freeze_count(),
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
