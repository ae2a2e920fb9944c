"""Presence that survives its instance: each instance holds a lease in Redis, renewed by a
heartbeat; whoever sees a lease run out takes over that instance's people.

Taking over means doing what the dead instance's socket clean-ups would have done: customers
get their grace period, advisors are taken out of routing (their open offers go back at once)
and their connected customers wait the advisor grace period. A person who already reconnected
elsewhere is left alone. The ``ZREM`` of the lease entry is the claim: one instance takes over.

After a Redis outage every lease looks expired; an instance takes over others only once it has
itself renewed for a full lease period, by which time every live instance has renewed too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from contact_center import redis_keys
from contact_center.contacts.presence import identity_of_json
from contact_center.contacts.service import ContactService
from contact_center.db.models import Role

log = logging.getLogger(__name__)

LEASE_S = 10.0
HEARTBEAT_S = 2.0


@dataclass
class Leases:
    """This instance's lease, and the take-over of instances whose lease ran out."""

    svc: ContactService
    lease_s: float = LEASE_S
    _healthy_since: float | None = field(default=None, init=False)
    _orphans: set[str] = field(default_factory=set, init=False)

    @property
    def heartbeat_s(self) -> float:
        return min(HEARTBEAT_S, self.lease_s / 4)

    async def renew(self, now: float | None = None) -> None:
        """Extend this instance's lease; remember since when renewals have been succeeding."""
        now = time.time() if now is None else now
        try:
            await self.svc.redis.zadd(redis_keys.LEASES, {self.svc.instance_id: now + self.lease_s})
        except Exception:
            self._healthy_since = None
            raise
        if self._healthy_since is None:
            self._healthy_since = now

    async def release(self) -> None:
        """A clean stop: the socket clean-ups already ran, so the registry goes; the lease is
        left expired, so that a live instance takes it over at its next heartbeat and adopts
        the contacts still going on here (``adoption``), which nobody else would move."""
        await self.svc.redis.delete(redis_keys.presence(self.svc.instance_id))
        await self.svc.redis.zadd(redis_keys.LEASES, {self.svc.instance_id: 0})

    async def heartbeat(self, now: float | None = None) -> int:
        """Renew, then take over instances whose lease ran out; returns how many were taken."""
        now = time.time() if now is None else now
        await self.renew(now)
        await self.prune_own()
        return await self.take_over_expired(now)

    async def prune_own(self) -> int:
        """Entries of our registry with no socket here (a clean-up that failed, Redis down): seen
        so on two heartbeats in a row, they are acted for as a take-over would."""
        key = redis_keys.presence(self.svc.instance_id)
        refs = {str(r) for r in await self.svc.redis.hkeys(key)}
        orphans = {r for r in refs if not self.svc.bus.has_local(r)}
        stale, self._orphans = orphans & self._orphans, orphans - self._orphans
        if stale:
            blobs = {r: await self.svc.redis.hget(key, r) for r in stale}
            await self._act_for(key, {r: None if b is None else str(b) for r, b in blobs.items()})
        return len(stale)

    async def take_over_expired(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        if self._healthy_since is None or now - self._healthy_since < self.lease_s:
            return 0  # just started or just reconnected: the others may not have renewed yet
        expired = await self.svc.redis.zrangebyscore(redis_keys.LEASES, "-inf", now)
        taken = 0
        for instance in map(str, expired):
            if instance == self.svc.instance_id:
                continue
            if not await self.svc.redis.zrem(redis_keys.LEASES, instance):
                continue  # another instance took it
            await self.take_over(instance)
            taken += 1
        return taken

    async def take_over(self, instance: str) -> int:
        """Act for everyone who was connected to ``instance`` and is connected nowhere now."""
        key = redis_keys.presence(instance)
        people = await self.svc.redis.hgetall(key)
        log.warning("instance %s is gone: acting for its %d people", instance, len(people))
        handled = await self._act_for(key, {str(r): str(b) for r, b in people.items()})
        await self.svc.redis.hdel(redis_keys.INSTANCES, instance)
        try:
            adopted = await self.svc.adopt_contacts_of(instance)
        except Exception:
            log.exception("adopting the contacts of %s failed", instance)
        else:
            if adopted:
                log.warning("adopted %d contacts of %s", adopted, instance)
        return handled

    async def _act_for(self, key: str, people: dict[str, str | None]) -> int:
        handled = 0
        for ref, blob in people.items():
            await self.svc.redis.hdel(key, ref)
            if blob is None:
                continue
            try:
                if await self.svc.present_anywhere(str(ref)):
                    continue
                identity = identity_of_json(str(blob))
                if identity.role is Role.CUSTOMER:
                    await self.svc.customer_disconnected(identity)
                elif identity.role is Role.ADVISOR:
                    await self.svc.advisor_disconnected(identity)
                handled += 1
            except Exception:
                # reconciliation is the safety net for whoever is missed here
                log.exception("acting for %s (from %s) failed", ref, key)
        return handled
