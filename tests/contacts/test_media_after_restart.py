"""A call survives its server's crash: after a SIGKILL and a restart (a new instance id), both
parties reconnect, media is negotiated again on the live instance, the recording of the same
contact goes on in new files, and the advisor keeps the status they had."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp.test_utils import TestServer

from contact_center.db.engine import create_engine, session_factory, transaction
from contact_center.db.models import Contact, Role
from contact_center.media.ice import IceSettings
from contact_center.server.app import create_app
from contact_center.tools.synthetic import SyntheticPeer
from contact_center.tools.wsclient import SignallingClient
from recordings.storage import LocalStorage
from recordings.verify import verify
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


async def _contact(settings, contact_id: str) -> Contact:  # type: ignore[no-untyped-def]
    engine = create_engine(settings.database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            return contact
    finally:
        await engine.dispose()


async def _call(customer: SignallingClient, advisor: SignallingClient, contact_id: str,
                peers: list[SyntheticPeer]) -> tuple[SyntheticPeer, SyntheticPeer]:
    ice = IceSettings.loopback()
    customer_peer, advisor_peer = SyntheticPeer(ice, name="customer"), SyntheticPeer(ice, name="advisor")
    peers += [customer_peer, advisor_peer]
    for client, peer in ((customer, customer_peer), (advisor, advisor_peer)):
        await client.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
        await peer.accept_answer((await client.wait_for("rtc.answer", contact_id=contact_id))["sdp"])
    async with asyncio.timeout(30):
        while customer_peer.stats.stamped < 30 or advisor_peer.stats.stamped < 30:
            await asyncio.sleep(0.05)
    return customer_peer, advisor_peer


async def _video_call(customer: SignallingClient, advisor: SignallingClient, username: str,
                      peers: list[SyntheticPeer]) -> str:
    """The advisor signs in and takes a guest's video contact; media flows both ways."""
    await advisor.login(username, PASSWORD)
    await advisor.connect()
    await advisor.request("agent.status", status="available")
    await customer.as_guest()
    await customer.connect()
    contact_id = str((await customer.request(
        "session.start", channels=["video"], language="en", skip_bot=True))["contact_id"])
    await advisor.wait_for("offer", contact_id=contact_id)
    await advisor.request("offer.accept", contact_id=contact_id)
    await customer.wait_for("session.state", contact_id=contact_id, state="connected")
    await _call(customer, advisor, contact_id, peers)
    return contact_id


async def test_a_call_comes_back_on_the_restarted_server_and_its_recording_goes_on(
    fast_settings, redis_client, redis_url, tmp_path: Path
):
    user = await make_user(fast_settings, Role.ADVISOR, languages=["en"], skills={"general": 3})
    port = free_port()
    env = cli_env(
        CC_VAR_DIR=str(tmp_path / "var"), CC_PORT=str(port), CC_LOG_JSON="false",
        CC_REDIS_URL=redis_url, CC_DATABASE_URL=fast_settings.database_url,
        CC_BOT_ENABLED="false", CC_CUSTOMER_GRACE_S="30", CC_ADVISOR_GRACE_S="30",
        CC_PRESENCE_LEASE_S="2", CC_ICE_HOST_ADDRESSES="127.0.0.1",
    )
    base = f"http://127.0.0.1:{port}"
    server = spawn_server(env)
    customer, advisor = SignallingClient(base), SignallingClient(base)
    router = RouterStore(redis_client, load_policy(fast_settings.routing_policy))
    peers: list[SyntheticPeer] = []
    try:
        await until_ready(base, server)
        contact_id = await _video_call(customer, advisor, user.username, peers)
        await customer.request("chat.send", contact_id=contact_id, text="before the crash")
        first_instance = (await _contact(fast_settings, contact_id)).instance

        server.kill()
        server.wait(timeout=10)
        for peer in peers:
            await peer.close()
        peers.clear()
        server = spawn_server(env)
        await until_ready(base, server)

        # both come back on the restarted server (same cookies), and media works again there
        for client in (customer, advisor):
            client.seen.clear()
        await advisor.connect()
        state = await advisor.wait_for("agent.state")
        assert state["state"] != AgentState.OFFLINE.value, state
        await customer.connect()
        await customer.wait_for("session.state", contact_id=contact_id, state="connected")
        customer_peer, advisor_peer = await _call(customer, advisor, contact_id, peers)
        assert customer_peer.stats.out_of_order == advisor_peer.stats.out_of_order == 0
        moved = await _contact(fast_settings, contact_id)
        assert moved.instance != first_instance and moved.state == "connected"
        status = await router.agent_status(str(user.id))
        assert status.state is not AgentState.OFFLINE and contact_id in status.assigned

        await customer.request("chat.send", contact_id=contact_id, text="after the restart")
        await customer.request("session.end", contact_id=contact_id)
        await advisor.wait_for("session.state", contact_id=contact_id, state="wrap_up")
        await advisor.request("wrapup.done", contact_id=contact_id)

        directory = tmp_path / "var" / "recordings" / contact_id

        def sealed() -> bool:
            return (directory / "manifest.json").exists()

        await eventually(sealed, timeout=30)
        manifest = json.loads((directory / "manifest.json").read_text())
        files = {f["name"] if isinstance(f, dict) else f for f in manifest["files"]}
        # two legs of media: the files of the first call and new files of the second
        assert {"customer-video-1.webm", "customer-video-2.webm"} <= files, files
        lines = [json.loads(x) for x in (directory / "timeline.jsonl").read_text().splitlines()]
        assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
        texts = [line.get("text") for line in lines if line["kind"] == "chat"]
        assert texts.index("before the crash") < texts.index("after the restart")
        assert any(line.get("event") == "media_adopted" for line in lines), [x["kind"] for x in lines]
        engine = create_engine(fast_settings.database_url)
        reports = []

        async def chained() -> bool:  # the ledger entry follows the manifest
            reports.append(await verify(session_factory(engine), LocalStorage(directory.parent),
                                        contact_id=contact_id))
            return reports[-1].contacts == 1

        try:
            await eventually(chained, timeout=20)
        finally:
            await engine.dispose()
        assert reports[-1].ok and reports[-1].files == len(files), reports[-1].problems
    finally:
        for peer in peers:
            await peer.close()
        for client in (customer, advisor):
            await client.close()
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=20)


async def _instance(settings, **update) -> TestServer:  # type: ignore[no-untyped-def]
    port = free_port()
    app = create_app(settings.model_copy(update={
        "port": port, "public_base_url": f"http://127.0.0.1:{port}", **update}))
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    return server


async def test_a_server_stopped_mid_call_hands_it_over_to_the_other_instance(
    fast_settings, redis_client
):
    """A rolling restart: the instance holding a call stops cleanly; the other one takes its
    lease over, adopts the contact, and the call and its recording go on there, complete."""
    settings = fast_settings.model_copy(update={
        "customer_grace_s": 30.0, "advisor_grace_s": 30.0, "presence_lease_s": 2.0})
    stopping, staying = await _instance(settings), await _instance(settings)
    user = await make_user(settings, Role.ADVISOR, languages=["en"], skills={"general": 3})
    first, second = str(stopping.make_url("")), str(staying.make_url(""))
    customer, advisor = SignallingClient(first), SignallingClient(first)
    peers: list[SyntheticPeer] = []
    try:
        contact_id = await _video_call(customer, advisor, user.username, peers)
        await customer.request("chat.send", contact_id=contact_id, text="before the stop")
        gone = (await _contact(settings, contact_id)).instance

        await stopping.close()
        for peer in peers:
            await peer.close()
        peers.clear()

        async def adopted() -> bool:
            return (await _contact(settings, contact_id)).instance != gone

        await eventually(adopted, timeout=20)
        for client in (customer, advisor):
            client.seen.clear()
            await client.connect(second.replace("http", "ws", 1) + "/ws")
        await customer.wait_for("session.state", contact_id=contact_id, state="connected")
        await _call(customer, advisor, contact_id, peers)
        await customer.request("chat.send", contact_id=contact_id, text="after the stop")
        await customer.request("session.end", contact_id=contact_id)
        await advisor.wait_for("session.state", contact_id=contact_id, state="wrap_up")
        await advisor.request("wrapup.done", contact_id=contact_id)

        assert settings.recordings_dir is not None
        directory = settings.recordings_dir / contact_id
        await eventually(lambda: (directory / "manifest.json").exists(), timeout=30)
        manifest = json.loads((directory / "manifest.json").read_text())
        assert manifest["status"] == "complete", manifest["status"]
        assert {"advisor-video-1.webm", "advisor-video-2.webm"} <= {f["name"] for f in manifest["files"]}
        lines = [json.loads(x) for x in (directory / "timeline.jsonl").read_text().splitlines()]
        kinds = [line.get("event") or line["kind"] for line in lines]
        assert kinds.index("handover") < kinds.index("media_adopted"), kinds
        texts = [line.get("text") for line in lines if line["kind"] == "chat"]
        assert texts == ["before the stop", "after the stop"]
    finally:
        for peer in peers:
            await peer.close()
        for client in (customer, advisor):
            await client.close()
        await staying.close()
