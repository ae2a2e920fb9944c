"""The cleanup context of what keeps people from being stranded after a crash: this instance's
presence lease with its heartbeat (and the take-over of dead instances), and reconciliation of
the database, the router and live presence, at start and periodically.

A context of its own, after ``contacts_ctx`` (it needs the contact service), so that the loops
it owns start and stop together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from contact_center import appkeys
from contact_center.contacts.leases import Leases
from contact_center.contacts.reconcile import RECONCILE_EVERY_S, Reconciler

log = logging.getLogger(__name__)


async def _every(interval: float, work: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        try:
            await work()
        except Exception:
            log.exception("%s failed; retrying", name)
        await asyncio.sleep(interval)


async def reliability_ctx(app: web.Application) -> AsyncIterator[None]:
    svc = app[appkeys.CONTACTS]
    leases = Leases(svc, lease_s=app[appkeys.SETTINGS].presence_lease_s)
    reconciler = Reconciler(svc)
    app[appkeys.LEASES], app[appkeys.RECONCILER] = leases, reconciler
    await leases.renew()
    tasks = [
        asyncio.create_task(_every(leases.heartbeat_s, leases.heartbeat, "presence heartbeat"),
                            name="presence-heartbeat"),
        # the first pass runs at start
        asyncio.create_task(_every(RECONCILE_EVERY_S, reconciler.run, "reconcile"),
                            name="reconcile"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await leases.release()
