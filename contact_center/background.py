"""The background loops a context owns: started with it, stopped with it, never left running.

Stopping is more than one ``cancel()``. On Python 3.11 a cancel that lands just as redis-py's
own read timeout fires (a blocking ``XREAD``, a pub/sub ``get_message``) comes out of the
read as a ``TimeoutError``: the loop logs it as a Redis error, retries, and a cleanup that
awaits the task waits forever. So :class:`Loops` sets a stop flag that every loop it runs
checks, and :func:`stop_tasks` cancels again, every 200 ms, until each task has ended or the
time is up; it never waits without a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_S = 0.2


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], *, within_s: float = 10.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again while one still runs; log what
    has not ended after ``within_s`` seconds."""
    pending = {task for task in tasks if not task.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, left))
    for task in pending:
        log.error("task %s did not stop within %.0f s of being cancelled", task.get_name(), within_s)


class Loops:
    """Named tasks and periodic jobs that end together, on a flag and a cancel."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    def every(self, interval: float, work: Callable[[], Awaitable[object]], name: str) -> None:
        """Run ``work`` now and then every ``interval`` seconds until stopped; a failure is
        logged and the next round runs."""
        self.start(self._every(interval, work, name), name)

    def until_stopped(
        self, work: Callable[[], Awaitable[object]], name: str, *, retry_s: float = 1.0
    ) -> None:
        """Run one round of ``work`` after another (each round blocks on its own, e.g. a
        blocking stream read) until stopped; after a failure, wait ``retry_s``."""
        self.start(self._repeat(work, name, retry_s), name)

    async def _every(self, interval: float, work: Callable[[], Awaitable[object]], name: str) -> None:
        while not self.stopping.is_set():
            try:
                await work()
            except Exception:
                log.exception("%s failed; retrying", name)
            await self.sleep(interval)

    async def _repeat(self, work: Callable[[], Awaitable[object]], name: str, retry_s: float) -> None:
        while not self.stopping.is_set():
            try:
                await work()
            except Exception:
                log.exception("%s: error, retrying", name)
                await self.sleep(retry_s)

    async def sleep(self, seconds: float) -> None:
        """Sleep, waking early when the loops are stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def stop(self, within_s: float = 10.0) -> None:
        self.stopping.set()
        await stop_tasks(self._tasks, within_s=within_s)
