"""CallMedia end to end: two real aiortc clients relayed through the server over loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from contact_center.media.call import CallMedia, MediaHub, MediaStateError, Party
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer, read_stamp

Until = Callable[..., Awaitable[None]]
Negotiate = Callable[[CallMedia, Party, SyntheticPeer], Awaitable[None]]
Pair = tuple[CallMedia, SyntheticPeer, SyntheticPeer, list[tuple[str, str, str]]]


async def test_media_flows_both_ways_in_order(call_pair: Pair, until: Until) -> None:
    call, customer, advisor, events = call_pair
    await until(lambda: customer.stats.stamped >= 45 and advisor.stats.stamped >= 45)
    await until(
        lambda: customer.stats.frames["audio"] >= 50 and advisor.stats.frames["audio"] >= 50
    )
    for peer in (customer, advisor):
        stats = peer.stats
        assert stats.out_of_order == 0
        assert list(stats.counters) == sorted(stats.counters)
        assert stats.unreadable <= stats.stamped // 20
        assert stats.fps("video", since=time.monotonic() - 1.0) >= 10
        p99 = stats.latency_ms(0.99)
        assert p99 is not None and 0 <= p99 < 2000
    for party in ("customer", "advisor"):
        assert (party, "connection", "connected") in events
    received = call.frames_received()
    assert set(received) == {"customer/audio", "customer/video", "advisor/audio", "advisor/video"}


async def test_fan_out_subscriber_reads_while_relay_continues(
    call_pair: Pair, until: Until
) -> None:
    call, customer, advisor, _ = call_pair
    tap = call.subscribe("customer", "video")
    audio_tap = call.subscribe("advisor", "audio")
    idle_tap = call.subscribe("customer", "video")  # never read: must not hold anything up
    counters = []
    async with asyncio.timeout(10):
        for _ in range(30):
            stamp = read_stamp(await tap.recv())
            if stamp is not None:
                counters.append(stamp.counter)
        await audio_tap.recv()
    assert len(counters) >= 28 and counters == sorted(counters)
    before = advisor.stats.stamped
    await until(lambda: advisor.stats.stamped >= before + 30)
    assert advisor.stats.out_of_order == 0
    tap.stop()
    idle_tap.stop()
    with pytest.raises(MediaStreamError):
        await tap.recv()


async def test_subscription_taken_before_the_track_exists(
    ice: IceSettings, negotiate: Negotiate, until: Until
) -> None:
    call = CallMedia("early-tap", ice)
    tap = call.subscribe("customer", "video")
    customer = SyntheticPeer(ice, audio=False, name="customer")
    try:
        await negotiate(call, "customer", customer)
        async with asyncio.timeout(10):
            frame = await tap.recv()
        assert read_stamp(frame) is not None
    finally:
        await call.close()
        await customer.close()
    with pytest.raises(MediaStreamError):
        await tap.recv()


async def test_renegotiation_upgrades_voice_to_video(
    ice: IceSettings, negotiate: Negotiate, until: Until
) -> None:
    call = CallMedia("upgrade", ice)
    customer = SyntheticPeer(ice, video=False, name="customer")
    advisor = SyntheticPeer(ice, video=False, name="advisor")
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await until(
            lambda: customer.stats.frames["audio"] >= 10 and advisor.stats.frames["audio"] >= 10
        )
        pcs = (call.peer_connection("customer"), call.peer_connection("advisor"))
        assert customer.stats.frames["video"] == advisor.stats.frames["video"] == 0

        customer.add_video()
        await negotiate(call, "customer", customer)
        advisor.add_video()
        await negotiate(call, "advisor", advisor)

        await until(lambda: customer.stats.stamped >= 30 and advisor.stats.stamped >= 30)
        assert (call.peer_connection("customer"), call.peer_connection("advisor")) == pcs
        assert CallMedia.open_peer_connections() == 2
        audio_before = customer.stats.frames["audio"]
        await until(lambda: customer.stats.frames["audio"] >= audio_before + 10)
        assert customer.stats.out_of_order == advisor.stats.out_of_order == 0
    finally:
        await call.close()
        await customer.close()
        await advisor.close()


async def test_closed_call_refuses_work_and_close_is_idempotent(ice: IceSettings) -> None:
    call = CallMedia("closing", ice)
    await asyncio.gather(call.close(), call.close())
    await call.close()
    assert call.closed and CallMedia.live_instances() == 0
    peer = SyntheticPeer(ice)
    try:
        with pytest.raises(MediaStateError, match="closed"):
            await call.answer("customer", await peer.offer())
        with pytest.raises(MediaStateError):
            call.subscribe("customer", "audio")
    finally:
        await peer.close()


async def test_hub_owns_calls_and_tags_events(
    ice: IceSettings, negotiate: Negotiate, until: Until
) -> None:
    events: list[tuple[str, str, str, str]] = []
    hub = MediaHub(ice, on_event=lambda *event: events.append(event))
    first = hub.get_or_create("c-1")
    assert hub.get_or_create("c-1") is first and hub.get("c-2") is None
    second = hub.get_or_create("c-2")
    peer = SyntheticPeer(ice, video=False)
    try:
        await negotiate(second, "advisor", peer)
        await until(lambda: ("c-2", "advisor", "connection", "connected") in events)
        await hub.close_call("c-1")
        assert first.closed and len(hub) == 1
        await hub.close()
        await hub.close()
        assert second.closed and len(hub) == 0
        assert ("c-2", "advisor", "connection", "closed") in events
        with pytest.raises(MediaStateError):
            hub.get_or_create("c-3")
    finally:
        await peer.close()
    assert CallMedia.live_instances() == 0 and CallMedia.open_peer_connections() == 0


async def test_sequential_sessions_leave_nothing_behind(
    ice: IceSettings, negotiate: Negotiate, until: Until
) -> None:
    baseline = {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}
    hub = MediaHub(ice)
    for index in range(20):  # about a second of media each
        call = hub.get_or_create(f"seq-{index}")
        customer = SyntheticPeer(ice, name=f"customer-{index}")
        advisor = SyntheticPeer(ice, name=f"advisor-{index}")
        try:
            await negotiate(call, "customer", customer)
            await negotiate(call, "advisor", advisor)
            tap = call.subscribe("customer", "audio")
            await until(
                lambda c=customer, a=advisor: c.stats.stamped >= 30 and a.stats.stamped >= 30
            )
            await tap.recv()
        finally:
            await hub.close_call(f"seq-{index}")
            await customer.close()
            await advisor.close()
        assert CallMedia.live_instances() == 0
        assert CallMedia.open_peer_connections() == 0
    await hub.close()

    def leftovers() -> set[asyncio.Task[object]]:
        current = asyncio.current_task()
        return {t for t in asyncio.all_tasks() if t is not current and t not in baseline}

    # aiortc/aioice finish their own last callbacks within a few event-loop turns.
    await until(lambda: not leftovers(), 5.0)


def split_candidates(sdp: str) -> tuple[str, list[tuple[str, str]]]:
    """The SDP without candidate lines, and each removed candidate with its m-section's mid."""
    kept, trickled, mid = [], [], ""
    pending: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            trickled += [(candidate, mid) for candidate in pending]
            pending, mid = [], ""
        if line.startswith("a=mid:"):
            mid = line.removeprefix("a=mid:")
        if line.startswith("a=candidate:"):
            pending.append(line.removeprefix("a="))
        elif line != "a=end-of-candidates":
            kept.append(line)
    trickled += [(candidate, mid) for candidate in pending]
    return "\r\n".join(kept) + "\r\n", trickled


async def test_trickled_candidates_connect(ice: IceSettings, until: Until) -> None:
    call = CallMedia("trickle", ice)
    customer = SyntheticPeer(ice, video=False, name="customer")
    try:
        with pytest.raises(MediaStateError, match="no offer"):
            await call.add_candidate("customer", "")
        bare_offer, candidates = split_candidates(await customer.offer())
        assert candidates and "a=candidate" not in bare_offer
        await customer.accept_answer(await call.answer("customer", bare_offer))
        with pytest.raises(ValueError, match="malformed"):
            await call.add_candidate("customer", "candidate:1 1 udp", "0")
        for candidate, mid in candidates:
            await call.add_candidate("customer", candidate, sdp_mid=mid)
        await call.add_candidate("customer", "")
        async with asyncio.timeout(10):
            await customer.wait_connected()
        pc = call.peer_connection("customer")
        assert pc is not None
        ice_transport = pc.getTransceivers()[0].receiver.transport.transport
        remote_ports = {c.port for c in ice_transport.getRemoteCandidates() if c.type == "host"}
        assert {int(candidate.split()[5]) for candidate, _ in candidates} <= remote_ports
    finally:
        await call.close()
        await customer.close()


async def test_recorder_like_tap_encoding_its_frames_leaves_relay_intact(
    call_pair: Pair, until: Until
) -> None:
    """A consumer that encodes what it reads (as the recorder will) gets its own frame copies."""
    call, customer, advisor, _ = call_pair
    tap = call.subscribe("customer", "video")
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 480, "yuv420p"
    encoder.time_base = Fraction(1, 90_000)
    encoder.options = {"deadline": "realtime", "cpu-used": "8"}
    packets = 0
    before = advisor.stats.stamped
    async with asyncio.timeout(10):
        for _ in range(30):
            frame = await tap.recv()
            assert isinstance(frame, av.VideoFrame)
            frame.pict_type = av.video.frame.PictureType.NONE  # what an encoder may touch
            packets += len(await asyncio.to_thread(encoder.encode, frame))
    assert packets > 0
    await until(lambda: advisor.stats.stamped >= before + 30)
    assert advisor.stats.out_of_order == 0 and advisor.stats.unreadable <= 2


async def test_party_reconnects_with_a_new_peer_connection(
    ice: IceSettings, negotiate: Negotiate, until: Until
) -> None:
    call = CallMedia("reconnect", ice)
    customer = SyntheticPeer(ice, name="customer")
    advisor = SyntheticPeer(ice, name="advisor")
    second: SyntheticPeer | None = None
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await until(lambda: advisor.stats.stamped >= 45)
        first_pc = call.peer_connection("customer")
        assert first_pc is not None and customer.video_track is not None
        old_last = customer.video_track.counter
        await customer.close()
        await first_pc.close()  # what a failed ICE check ends in, without waiting 30 s for it
        second = SyntheticPeer(ice, name="customer-again")
        await negotiate(call, "customer", second)
        assert call.peer_connection("customer") is not first_pc
        assert CallMedia.open_peer_connections() == 2
        # The advisor's relay follows the new inbound track, whose counter starts again at 1.
        await until(lambda: advisor.stats.counters[-1] < old_last)
        await until(lambda: second is not None and second.stats.stamped >= 10)
        before = advisor.stats.stamped
        await until(lambda: advisor.stats.stamped >= before + 10)
    finally:
        await call.close()
        await customer.close()
        await advisor.close()
        if second is not None:
            await second.close()


async def test_a_new_client_peer_connection_replaces_a_live_one(
    ice: IceSettings, negotiate: Negotiate, until: Until
) -> None:
    """A page reloaded mid-call offers from a new peer connection while the old one is up."""
    call = CallMedia("reload", ice)
    customer = SyntheticPeer(ice, name="customer")
    advisor = SyntheticPeer(ice, name="advisor")
    second: SyntheticPeer | None = None
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await until(lambda: advisor.stats.stamped >= 30)
        first_pc = call.peer_connection("customer")
        second = SyntheticPeer(ice, name="customer-reloaded")
        await negotiate(call, "customer", second)  # the old client is still connected
        assert call.peer_connection("customer") is not first_pc
        assert first_pc is not None and first_pc.connectionState == "closed"
        await until(lambda: second is not None and second.stats.stamped >= 10)
        before = advisor.stats.stamped
        await until(lambda: advisor.stats.stamped >= before + 10)
    finally:
        await call.close()
        await customer.close()
        await advisor.close()
        if second is not None:
            await second.close()
