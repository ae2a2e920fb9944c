"""A Redis failover, two ways, on real servers on loopback (``tests.redis_servers``): Sentinel (a
primary, a replica and three sentinels; the app is told only where the sentinels are,
``CC_REDIS_SENTINELS``) and Cluster (three masters with a replica each, ``CC_REDIS_CLUSTER``;
the master holding the router's slot is the one killed).

The primary is killed with SIGKILL in the middle of a conversation; its replica is promoted;
the app finds the new primary by itself: the conversation goes on (a line retried by its
request id arrives once), a new customer is routed, and the router holds each contact once,
within capacity.

Redis replicates asynchronously: a write acknowledged by the primary in the last moment before
it dies can be lost in a failover. The test waits for the replica before the kill, so that
what it checks is the app's failover, not Redis' replication window; the periodic
reconciliation (``contacts.reconcile``) is what repairs the router from the database after such
a loss.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from redis.crc import key_slot

from contact_center import appkeys, redis_keys
from contact_center.bus import CHANNEL_PREFIX
from contact_center.contacts import store
from contact_center.contacts.core import agent_id_of
from contact_center.db.engine import transaction
from contact_center.db.models import Role
from contact_center.server.app import create_app
from contact_center.tools.wsclient import RequestFailed, SignallingClient
from routing.keys import RouterKeys
from routing.models import Channel
from tests.helpers import PASSWORD, make_user
from tests.redis_servers import ClusterGroup, RedisProcess, SentinelGroup, require_redis_server

pytestmark = pytest.mark.timeout(120)


class SentinelFailover:
    def __init__(self, root: Path) -> None:
        self.group = SentinelGroup(root).start()

    def settings(self) -> dict[str, object]:
        return {"redis_sentinels": self.group.addresses,
                "redis_sentinel_service": self.group.service}

    def kill_primary(self) -> int:
        """Kill the primary (once the replica has everything); its port."""
        old = self.group.primary_port()
        self.group.wait_replicated()
        self.group.primary.kill()
        return old

    def promoted(self, old: int) -> bool:
        return self.group.primary_port() == self.group.replica.port != old

    def stop(self) -> None:
        self.group.stop()


class ClusterFailover:
    #: the router's keys: the slot whose loss stops routing
    SLOT = key_slot(RouterKeys().agents.encode())
    #: the bus's subscription is on the node of this slot, the timelines on this one's
    BUS_SLOT = key_slot(f"{CHANNEL_PREFIX}*".encode())
    TIMELINE_SLOT = key_slot(redis_keys.timeline("").encode())

    def __init__(self, root: Path) -> None:
        self.group = ClusterGroup(root, replicas=1, node_timeout_ms=1000).start()

    def settings(self) -> dict[str, object]:
        return {"redis_cluster": self.group.nodes}

    def kill_primary(self) -> int:
        master: RedisProcess = self.group.master_of(self.SLOT)
        # one node for all three (slots spread evenly over three masters): its loss is felt by
        # the router, the bus (which subscribes again, then sends again) and the timelines
        assert self.group.master_of(self.BUS_SLOT) is master
        assert self.group.master_of(self.TIMELINE_SLOT) is master
        master.client().execute_command("WAIT", 1, 5000)
        master.kill()
        return master.port

    def promoted(self, old: int) -> bool:
        self.group.wait_ok()
        return self.group.master_of(self.SLOT).port != old

    def stop(self) -> None:
        self.group.stop()


@pytest.fixture(params=[SentinelFailover, ClusterFailover], ids=["sentinel", "cluster"])
def failover(request, tmp_path):  # type: ignore[no-untyped-def]
    require_redis_server()
    group = request.param(tmp_path / "redis")
    try:
        yield group
    finally:
        group.stop()


async def _retry(client: SignallingClient, type_: str, seconds: float, **fields):  # type: ignore[no-untyped-def]
    """The request, retried with the same id until it succeeds; (reply, tries)."""
    request_id = client.next_request_id()
    deadline = time.monotonic() + seconds
    tries = 0
    while True:
        tries += 1
        try:
            return await client.request(type_, request_id=request_id, timeout=3, **fields), tries
        except (RequestFailed, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_the_app_follows_a_failover(fast_settings, failover):
    settings = fast_settings.model_copy(update={"redis_url": None, **failover.settings()})
    assert not settings.embedded_redis
    user = await make_user(settings, Role.ADVISOR, languages=["en"], skills={"general": 3},
                           capacity={"text": 3})
    server = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await server.start_server()
    advisor = SignallingClient(str(server.make_url("")))
    first, second = (SignallingClient(str(server.make_url(""))) for _ in range(2))
    try:
        await advisor.login(user.username, PASSWORD)
        await advisor.connect()
        await advisor.request("agent.status", status="available")
        await first.as_guest()
        await first.connect()
        contact = (await first.request("session.start", channels=["text"], language="en",
                                       skip_bot=True))["contact_id"]
        await advisor.wait_for("offer", contact_id=contact)
        await advisor.request("offer.accept", contact_id=contact)
        await first.wait_for("session.state", contact_id=contact, state="connected")
        await first.request("chat.send", contact_id=contact, text="before the failover")
        await advisor.wait_for("chat.message", text="before the failover")

        old_primary = failover.kill_primary()
        killed_at = time.monotonic()

        # the customer's next line: retried with its request id until Redis is back
        _, tries = await _retry(first, "chat.send", 30, contact_id=contact, text="after the failover")
        recovered_s = time.monotonic() - killed_at
        assert failover.promoted(old_primary)
        # what the outage kept from the advisor's socket is sent again when the bus is back;
        # clients place lines by seq, so a line sent twice is shown once: one seq per line
        line = await advisor.wait_for("chat.message", text="after the failover", timeout=10)
        await asyncio.sleep(1.0)
        again = [m for m in advisor.seen if m.get("text") == "after the failover"]
        assert all(m["seq"] == line["seq"] for m in again)
        async with transaction(server.app[appkeys.DB]) as session:
            stored = [m.text for m in await store.chat_history(session, contact_id=contact)]
        assert stored == ["before the failover", "after the failover"]  # the retry stored once

        # a new customer is routed by the new primary to the same advisor (capacity 3)
        await second.as_guest()
        await second.connect()
        started, _ = await _retry(second, "session.start", 15, channels=["text"], language="en",
                                  skip_bot=True)
        await advisor.wait_for("offer", contact_id=started["contact_id"])
        await advisor.request("offer.accept", contact_id=started["contact_id"])
        await second.wait_for("session.state", contact_id=started["contact_id"], state="connected")

        status = await server.app[appkeys.ROUTER].agent_status(agent_id_of(user.id))
        assert status.assigned == {contact, started["contact_id"]} and not status.offered
        assert status.load[Channel.TEXT] == 2 <= status.capacity[Channel.TEXT]
        print(f"{type(failover).__name__}: chat recovered {recovered_s:.2f} s after SIGKILL of the primary "
              f"({tries} tries, seq {line['seq']})")
    finally:
        for client in (first, second, advisor):
            await client.close()
        await server.close()
