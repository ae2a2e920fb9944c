"""The timer loop: any number of instances may run it; each deadline is handled exactly once."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from routing.store import RouterStore

log = logging.getLogger(__name__)


class RouterWorker:
    """Calls ``store.process_due`` every ``interval`` seconds until cancelled.

    The first call happens at once, so offers that expired while every instance was down are
    expired on start. Cancellation is safe at any await: each script runs atomically in Redis,
    so a cancelled call either happened entirely or not at all.
    """

    def __init__(self, store: RouterStore, *, interval: float = 0.5) -> None:
        self.store = store
        self.interval = interval
        self.processed = 0

    async def run_once(self) -> int:
        done = await self.store.process_due()
        self.processed += done
        return done

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except RedisError:
                # Redis restarting or unreachable: keep trying, the deadlines wait in Redis
                log.exception("routing timer: redis error, retrying")
            await asyncio.sleep(self.interval)
