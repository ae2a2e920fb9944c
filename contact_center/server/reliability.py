"""The cleanup context of what keeps people from being stranded after a crash: this instance's
presence lease with its heartbeat (and the take-over of dead instances), and reconciliation of
the database, the router and live presence, at start and periodically.

A context of its own, after ``contacts_ctx`` (it needs the contact service), so that the loops
it owns start and stop together.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from contact_center import appkeys
from contact_center.background import Loops
from contact_center.contacts.leases import Leases
from contact_center.contacts.reconcile import Reconciler

log = logging.getLogger(__name__)


async def reliability_ctx(app: web.Application) -> AsyncIterator[None]:
    svc = app[appkeys.CONTACTS]
    leases = Leases(svc, lease_s=app[appkeys.SETTINGS].presence_lease_s)
    reconciler = Reconciler(svc)
    app[appkeys.LEASES], app[appkeys.RECONCILER] = leases, reconciler
    await leases.renew()
    loops = Loops()
    loops.every(leases.heartbeat_s, leases.heartbeat, "presence heartbeat")
    # the first pass runs at start
    loops.every(app[appkeys.SETTINGS].reconcile_every_s, reconciler.run, "reconcile")
    try:
        yield
    finally:
        await loops.stop()
        with contextlib.suppress(Exception):
            await leases.release()
