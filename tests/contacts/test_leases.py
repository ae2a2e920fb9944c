"""Presence outlives its instance: after a SIGKILL another instance acts for that instance's
people; a reconnect on another instance is not undone by the old socket's clean-up."""

from __future__ import annotations

import asyncio
import time

from aiohttp.test_utils import TestServer

from contact_center.contacts.states import ContactState
from contact_center.db.engine import create_engine, session_factory, transaction
from contact_center.db.models import Contact, Role
from contact_center.server.app import create_app
from contact_center.tools.wsclient import SignallingClient
from routing.models import AgentState
from routing.policy import load_policy
from routing.store import RouterStore
from tests.helpers import (
    PASSWORD,
    cli_env,
    eventually,
    free_port,
    make_user,
    spawn_server,
    until_ready,
)


async def _instance(settings, **update) -> TestServer:  # type: ignore[no-untyped-def]
    port = free_port()
    app = create_app(
        settings.model_copy(
            update={"port": port, "public_base_url": f"http://127.0.0.1:{port}", **update}
        )
    )
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    return server


async def _states(settings, *ids: str) -> list[str]:  # type: ignore[no-untyped-def]
    engine = create_engine(settings.database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            return [(await session.get(Contact, i)).state for i in ids]  # type: ignore[union-attr]
    finally:
        await engine.dispose()


async def test_a_killed_instance_s_people_are_timed_out_and_its_advisors_leave_routing(
    fast_settings, redis_client, redis_url, tmp_path
):
    survivor = await _instance(fast_settings, presence_lease_s=2.0)
    user = await make_user(
        fast_settings, Role.ADVISOR, languages=["en"], skills={"general": 3}, capacity={"text": 1}
    )
    port = free_port()
    victim = spawn_server(cli_env(
        CC_VAR_DIR=str(tmp_path / "victim"), CC_PORT=str(port), CC_LOG_JSON="false",
        CC_REDIS_URL=redis_url, CC_DATABASE_URL=fast_settings.database_url,
        CC_BOT_ENABLED="false", CC_CUSTOMER_GRACE_S="1", CC_ADVISOR_GRACE_S="1",
        CC_PRESENCE_LEASE_S="2",
    ))
    base = f"http://127.0.0.1:{port}"
    advisor, served, waiting = (SignallingClient(base) for _ in range(3))
    router = RouterStore(redis_client, load_policy(fast_settings.routing_policy))
    try:
        await until_ready(base, victim)
        await advisor.login(user.username, PASSWORD)
        await advisor.connect()
        await advisor.request("agent.status", status="available")
        await served.as_guest()
        await served.connect()
        first = (await served.request("session.start", channels=["text"], language="en",
                                      skip_bot=True))["contact_id"]
        await advisor.wait_for("offer", contact_id=first)
        await advisor.request("offer.accept", contact_id=first)
        await served.wait_for("session.state", contact_id=first, state="connected")
        await waiting.as_guest()
        await waiting.connect()
        second = (await waiting.request("session.start", channels=["text"], language="en",
                                        skip_bot=True))["contact_id"]

        victim.kill()
        victim.wait(timeout=10)
        killed = time.monotonic()
        agent = str(user.id)

        async def settled() -> bool:
            states = await _states(fast_settings, first, second)
            status = await router.agent_status(agent)
            last[:] = [*states, status.state]
            # both parties of the first are gone: the advisor grace may requeue it first
            gone = (ContactState.WRAP_UP, ContactState.ABANDONED)
            return states[0] in gone and states[1] == ContactState.ABANDONED and (
                status.state is AgentState.OFFLINE
            )

        last: list[str] = []
        try:
            await eventually(settled, timeout=20)
        except AssertionError:
            raise AssertionError(f"contacts and advisor are {last}") from None
        took = time.monotonic() - killed
        # lease (2 s) + the survivor's heartbeat + grace (1 s) + sweep, with room to spare
        assert took < 10, took
        print(f"\nkilled instance's people acted for within {took:.1f} s")
    finally:
        if victim.poll() is None:
            victim.kill()
        for c in (advisor, served, waiting):
            await c.close()
        await survivor.close()


async def test_a_reconnect_elsewhere_is_not_undone_by_the_old_socket_s_clean_up(
    fast_settings, redis_client
):
    first, second = await _instance(fast_settings), await _instance(fast_settings)
    old = SignallingClient(str(first.make_url("")))
    new = SignallingClient(str(second.make_url("")), session=old.http)
    try:
        await old.as_guest()
        await old.connect()
        contact_id = (await old.request("session.start", channels=["text"], language="en",
                                        skip_bot=True))["contact_id"]
        # the customer is back on the second instance before the first notices the old socket
        await new.connect()
        await new.wait_for("session.state", contact_id=contact_id, reason="resumed")
        assert old.ws is not None
        await old.ws.close()
        await asyncio.sleep(fast_settings.customer_grace_s + 1.5)
        assert await _states(fast_settings, contact_id) == [ContactState.QUEUED]
        await new.request("chat.send", contact_id=contact_id, text="still here")
    finally:
        await new.close()
        await old.close()
        await first.close()
        await second.close()
