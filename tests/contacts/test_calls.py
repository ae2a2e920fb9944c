"""Video and voice through the server: real aiortc peers, real signalling, loopback only."""

from __future__ import annotations

import asyncio
import gc

from aiortc import RTCPeerConnection

from contact_center import appkeys
from contact_center.media.call import CallMedia
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer

ICE = IceSettings.loopback()


async def _until(predicate, seconds: float = 20) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.05)


async def _connect_call(clients, advisor_factory, channels=("video",)):
    user = await advisor_factory()
    advisor = await clients(username=user.username)
    await advisor.request("agent.status", status="available")
    customer = await clients(guest=True)
    started = await customer.request("session.start", channels=list(channels), language="en", skip_bot=True)
    contact_id = started["contact_id"]
    offer = await advisor.wait_for("offer", contact_id=contact_id)
    assert offer["media_url"], "the offer says where the media lives"
    await advisor.request("offer.accept", contact_id=contact_id)
    await customer.wait_for("session.state", contact_id=contact_id, state="connected")
    return customer, advisor, contact_id


async def _negotiate(client, contact_id: str, peer: SyntheticPeer) -> None:
    await client.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
    answer = await client.wait_for("rtc.answer", contact_id=contact_id)
    await peer.accept_answer(answer["sdp"])


async def test_video_and_audio_flow_both_ways_in_order(server, clients, advisor_factory):
    customer, advisor, contact_id = await _connect_call(clients, advisor_factory)
    customer_peer = SyntheticPeer(ICE, name="customer")
    advisor_peer = SyntheticPeer(ICE, name="advisor")
    try:
        await _negotiate(customer, contact_id, customer_peer)
        await _negotiate(advisor, contact_id, advisor_peer)
        await _until(lambda: customer_peer.stats.stamped >= 45 and advisor_peer.stats.stamped >= 45)
        await _until(
            lambda: customer_peer.stats.frames["audio"] >= 50 and advisor_peer.stats.frames["audio"] >= 50
        )
        for peer in (customer_peer, advisor_peer):
            assert peer.stats.out_of_order == 0
            assert list(peer.stats.counters) == sorted(peer.stats.counters)
        event = await customer.wait_for("peer.event", contact_id=contact_id, party="customer")
        assert event["state"] == "connected"
        await customer.request("session.end", contact_id=contact_id)
        await advisor.wait_for("session.state", contact_id=contact_id, state="wrap_up")
        assert server.app[appkeys.MEDIA].get(contact_id) is None
        # the call was recorded as received: one playable file per inbound track
        import av


        folder = server.app[appkeys.SETTINGS].recordings_dir / contact_id
        # the media files (the contact's timeline is beside them; see test_recording_lifecycle)
        files = sorted(p.name for p in folder.iterdir() if p.suffix == ".webm")
        assert files == [
            "advisor-audio-1.webm", "advisor-video-1.webm", "customer-audio-1.webm", "customer-video-1.webm",
        ]
        for name in files:
            with av.open(str(folder / name)) as container:
                assert sum(1 for _ in container.demux()) > 10
    finally:
        await customer_peer.close()
        await advisor_peer.close()


async def test_text_then_voice_then_video_in_one_contact(server, clients, advisor_factory):
    customer, advisor, contact_id = await _connect_call(clients, advisor_factory, channels=("text",))
    assert (await customer.request("session.upgrade", contact_id=contact_id, channel="voice"))["agreed"] is False
    asked = await advisor.wait_for("session.upgrade", contact_id=contact_id)
    assert asked["by"] == "customer" and asked["channel"] == "voice"
    assert (await advisor.request("session.upgrade", contact_id=contact_id, channel="voice"))["agreed"]
    state = await customer.wait_for("session.state", contact_id=contact_id, reason="upgraded")
    assert state["channels"] == ["text", "voice"]
    customer_peer = SyntheticPeer(ICE, video=False, name="customer")
    advisor_peer = SyntheticPeer(ICE, video=False, name="advisor")
    try:
        await _negotiate(customer, contact_id, customer_peer)
        await _negotiate(advisor, contact_id, advisor_peer)
        await _until(lambda: advisor_peer.stats.frames["audio"] >= 25 and customer_peer.stats.frames["audio"] >= 25)
        await advisor.request("session.upgrade", contact_id=contact_id, channel="video")
        await customer.request("session.upgrade", contact_id=contact_id, channel="video")
        state = await advisor.wait_for("session.state", contact_id=contact_id, reason="upgraded", channels=["text", "voice", "video"])
        for client, peer in ((customer, customer_peer), (advisor, advisor_peer)):
            peer.add_video()
            await _negotiate(client, contact_id, peer)
        await _until(lambda: customer_peer.stats.stamped >= 30 and advisor_peer.stats.stamped >= 30)

        status = await server.app[appkeys.ROUTER].contact_status(contact_id)
        assert status.channel.value == "video"  # counted against the video capacity now
    finally:
        await customer_peer.close()
        await advisor_peer.close()


async def test_twenty_calls_leave_no_peer_connection_or_task_behind(server, clients, advisor_factory):
    user = await advisor_factory()
    advisor = await clients(username=user.username)
    await advisor.request("agent.status", status="available")
    tasks_before = {t.get_name() for t in asyncio.all_tasks()}
    count_before = len(asyncio.all_tasks())
    for _ in range(20):
        customer = await clients(guest=True)
        contact_id = (await customer.request("session.start", channels=["voice"], language="en", skip_bot=True))["contact_id"]
        await advisor.wait_for("offer", contact_id=contact_id)
        await advisor.request("offer.accept", contact_id=contact_id)
        customer_peer = SyntheticPeer(ICE, video=False, name="customer")
        advisor_peer = SyntheticPeer(ICE, video=False, name="advisor")
        await _negotiate(customer, contact_id, customer_peer)
        await _negotiate(advisor, contact_id, advisor_peer)
        await _until(lambda p=advisor_peer: p.stats.frames["audio"] >= 5)
        await advisor.request("session.end", contact_id=contact_id)
        await advisor.request("wrapup.done", contact_id=contact_id)
        await customer_peer.close()
        await advisor_peer.close()
        await customer.close()
    await asyncio.sleep(0.5)
    gc.collect()
    assert len(server.app[appkeys.MEDIA]) == 0
    assert CallMedia.open_peer_connections() == 0
    leftovers = [o for o in gc.get_objects() if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"]
    assert leftovers == []
    extra = len(asyncio.all_tasks()) - count_before
    assert extra <= 2, sorted({t.get_name() for t in asyncio.all_tasks()} - tasks_before)
