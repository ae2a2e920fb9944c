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

The youngest generation is then collected every 10,000 allocations instead of 700: a request's
short-lived objects (futures, frames, rows) are mostly freed before a collection sees them, so
fewer are promoted and full passes come less often (p99 at 1,000 lines/s 35-45 -> 32-33 ms).
"""

from __future__ import annotations

import gc
import logging
import time

from aiohttp import web

log = logging.getLogger(__name__)

#: allocations between two collections of the youngest generation once started (CPython: 700)
YOUNG_THRESHOLD = 10_000


def freeze() -> None:
    """Collect the garbage there is, then freeze what is left (frozen garbage would never be
    freed)."""
    gc.collect()
    gc.freeze()


async def freeze_after_start(_app: web.Application) -> None:
    """An ``on_startup`` handler, after every context has started (``cleanup_ctx`` runs
    first): freezes the heap and widens the youngest generation (see the module)."""
    started = time.perf_counter()
    freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    log.info(
        "heap frozen",
        extra={
            "objects": gc.get_freeze_count(),
            "young_threshold": gc.get_threshold()[0],
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
