"""Two server instances on one Redis and one database: offers, chat and media cross over (on a
plain Redis and on a Redis Cluster)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestServer

from contact_center.db.models import Role
from contact_center.media.ice import IceSettings
from contact_center.server.app import create_app
from contact_center.tools.synthetic import SyntheticPeer
from contact_center.tools.wsclient import SignallingClient
from tests.helpers import PASSWORD, free_port, make_user
from tests.redis_servers import ON_CLUSTER_TOO


async def _instance(settings) -> TestServer:  # type: ignore[no-untyped-def]
    port = free_port()
    app = create_app(settings.model_copy(update={"port": port, "public_base_url": f"http://127.0.0.1:{port}"}))
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    return server


@ON_CLUSTER_TOO
async def test_customer_on_one_instance_advisor_on_the_other(fast_settings, redis_client):
    first, second = await _instance(fast_settings), await _instance(fast_settings)
    user = await make_user(fast_settings, Role.ADVISOR, languages=["en"], skills={"general": 3})
    customer = SignallingClient(str(first.make_url("")))
    advisor = SignallingClient(str(second.make_url("")))
    advisor_media = SignallingClient(str(first.make_url("")), session=advisor.http)
    peers: list[SyntheticPeer] = []
    try:
        await advisor.login(user.username, PASSWORD)
        await advisor.connect()
        await advisor.request("agent.status", status="available")
        await customer.as_guest()
        await customer.connect()
        started = await customer.request("session.start", channels=["video"], language="en", skip_bot=True)
        contact_id = started["contact_id"]

        offer = await advisor.wait_for("offer", contact_id=contact_id)
        assert offer["media_url"] == f"ws://127.0.0.1:{first.port}/ws"
        await advisor.request("offer.accept", contact_id=contact_id)
        await customer.wait_for("session.state", contact_id=contact_id, state="connected")

        await customer.request("chat.send", contact_id=contact_id, text="from instance one")
        await advisor.request("chat.send", contact_id=contact_id, text="from instance two")
        assert (await advisor.wait_for("chat.message", text="from instance one"))["seq"] == 1
        assert (await customer.wait_for("chat.message", text="from instance two"))["seq"] == 2

        # media lives where the contact started: the advisor's peer connection goes there
        ice = IceSettings.loopback()
        customer_peer, advisor_peer = SyntheticPeer(ice, name="customer"), SyntheticPeer(ice, name="advisor")
        peers += [customer_peer, advisor_peer]
        await customer.request("rtc.offer", contact_id=contact_id, sdp=await customer_peer.offer())
        await customer_peer.accept_answer((await customer.wait_for("rtc.answer"))["sdp"])
        refused = None
        try:
            await advisor.request("rtc.offer", contact_id=contact_id, sdp=await advisor_peer.offer())
        except Exception as exc:  # noqa: BLE001 - the wrong instance says so
            refused = exc
        assert refused is not None and "wrong_instance" in str(refused)
        await advisor_media.connect(offer["media_url"], media_only=True)
        await advisor_media.request("rtc.offer", contact_id=contact_id, sdp=await advisor_peer.offer())
        await advisor_peer.accept_answer((await advisor_media.wait_for("rtc.answer"))["sdp"])
        async with asyncio.timeout(20):
            while customer_peer.stats.stamped < 30 or advisor_peer.stats.stamped < 30:
                await asyncio.sleep(0.05)
        assert customer_peer.stats.out_of_order == advisor_peer.stats.out_of_order == 0

        # the media-only connection closing is not the advisor leaving
        await advisor_media.close()
        await asyncio.sleep(1.5)
        await advisor.request("chat.send", contact_id=contact_id, text="still here")
        await customer.request("session.end", contact_id=contact_id)
        await advisor.wait_for("session.state", contact_id=contact_id, state="wrap_up")
    finally:
        for peer in peers:
            await peer.close()
        for client in (customer, advisor_media, advisor):
            await client.close()
        await first.close()
        await second.close()
