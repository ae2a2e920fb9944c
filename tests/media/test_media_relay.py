"""Encoded relay: aiortc internals it hooks, frames in/packets out, and real calls on both paths."""

from __future__ import annotations

import asyncio
import inspect
import queue
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any

import aiortc
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.codecs import CODECS
from aiortc.codecs.vpx import vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver, RTCRtpSynchronizationSource, decoder_worker

from contact_center.media import relay as relay_module
from contact_center.media.call import CallMedia, Party
from contact_center.media.ice import IceSettings
from contact_center.media.relay import (
    AiortcMismatch,
    EncodedSource,
    PacketEncoder,
    RelayMode,
    RelayTrack,
    check_aiortc,
)
from contact_center.tools.synthetic import SyntheticPeer

Until = Callable[..., Awaitable[None]]
Negotiate = Callable[[CallMedia, Party, SyntheticPeer], Awaitable[None]]
Pair = tuple[CallMedia, SyntheticPeer, SyntheticPeer, list[tuple[str, str, str]]]

VP8 = next(c for c in CODECS["video"] if c.mimeType == "video/VP8")
H264 = next(c for c in CODECS["video"] if c.mimeType == "video/H264")
OPUS = next(c for c in CODECS["audio"] if c.mimeType == "audio/opus")
KEY, DELTA = b"\x10", b"\x11"  # VP8 frame tag: bit 0 clear on a key frame


# ---------------------------------------------------------------------- the hooked internals


def test_aiortc_is_the_reviewed_version_and_keeps_the_hooked_internals() -> None:
    """Fails on an aiortc upgrade until relay.py has been reviewed against it."""
    check_aiortc()
    assert aiortc.__version__ == relay_module.PINNED_AIORTC_VERSION
    receive = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__decoder_queue.put((codec, encoded_frame))" in receive
    assert "encoded_frame.timestamp = self.__timestamp_mapper.map(" in receive
    worker = inspect.getsource(decoder_worker)
    assert "input_q.get()" in worker and "decoder = get_decoder(codec)" in worker
    next_frame = inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "if self.__encoder is None:" in next_frame
    assert "self.__encoder.pack(data)" in next_frame
    rtcp = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "self._send_keyframe()" in rtcp


async def test_hooked_attributes_exist_on_live_objects() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video")
        assert isinstance(transceiver.receiver._RTCRtpReceiver__decoder_queue, queue.Queue)  # type: ignore[attr-defined]
        assert transceiver.sender._RTCRtpSender__encoder is None  # type: ignore[attr-defined]
        assert isinstance(transceiver.receiver._RTCRtpReceiver__rtx_ssrc, dict)  # type: ignore[attr-defined]
        assert isinstance(transceiver._codecs, list)
    finally:
        await pc.close()


async def test_other_aiortc_versions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(AiortcMismatch, match="not the reviewed"):
        check_aiortc()
    with pytest.raises(AiortcMismatch):
        CallMedia("refused", IceSettings.loopback())
    await CallMedia("transcode-ok", IceSettings.loopback(), relay="transcode").close()


# ---------------------------------------------------------------------- frames in, packets out


class FakeReceiver:
    """What EncodedSource uses of an RTCRtpReceiver: its decoder queue, SSRCs and PLI."""

    def __init__(self) -> None:
        self._RTCRtpReceiver__decoder_queue: Any = queue.Queue()
        self.real_queue: queue.Queue[Any] = self._RTCRtpReceiver__decoder_queue
        self.plis: list[int] = []

    def getSynchronizationSources(self) -> list[RTCRtpSynchronizationSource]:
        return [RTCRtpSynchronizationSource(timestamp=aiortc.clock.current_datetime(), source=7)]

    async def _send_rtcp_pli(self, ssrc: int) -> None:
        self.plis.append(ssrc)

    def feed(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        """What RTCRtpReceiver._handle_rtp_packet does with an assembled frame."""
        self._RTCRtpReceiver__decoder_queue.put((codec, JitterFrame(data, timestamp)))


def source_for(receiver: FakeReceiver, kind: str = "video") -> EncodedSource:
    return EncodedSource(receiver, kind, name="test")  # type: ignore[arg-type]


def relay_for(send_codec: RTCRtpCodecParameters, modes: list[RelayMode]) -> RelayTrack:
    track = RelayTrack(
        send_codec.mimeType.split("/")[0], name="test", on_mode=lambda _, m: modes.append(m)
    )
    track.send_codec = send_codec
    return track


async def drain(track: RelayTrack) -> list[Any]:
    out = []
    while track._packets or track._frame is not None:
        out.append(await track.recv())
    return out


async def test_video_starts_at_a_keyframe_and_timestamps_never_go_back() -> None:
    modes: list[RelayMode] = []
    track = relay_for(VP8, modes)
    first, second = FakeReceiver(), FakeReceiver()
    track.attach_encoded(source_for(first))
    first.feed(VP8, DELTA + b"lost-start", 0)  # joined mid-stream: dropped, keyframe requested
    first.feed(VP8, KEY + b"a", 3000)
    first.feed(VP8, DELTA + b"b", 6000)
    await asyncio.sleep(0)  # let the PLI task run
    assert first.plis == [7] and modes == ["encoded"]
    packets = await drain(track)
    assert [bytes(p) for p in packets] == [KEY + b"a", DELTA + b"b"]
    assert [p.pts for p in packets] == [0, 3000]
    assert all(p.time_base == Fraction(1, 90_000) for p in packets)

    track.attach_encoded(source_for(second))  # the other party reconnected: timestamps restart
    second.feed(VP8, KEY + b"c", 0)
    second.feed(VP8, DELTA + b"d", 3000)
    second.feed(VP8, DELTA + b"e", 3000 + 2**20)
    later = await drain(track)
    pts = [p.pts for p in later]
    assert pts[0] > 3000 and pts[1] - pts[0] == 3000 and pts[2] - pts[1] == 2**20
    assert modes == ["encoded"]  # same codec again: no new event
    track.stop()


async def test_overflow_restarts_video_at_the_next_keyframe() -> None:
    track = relay_for(VP8, [])
    receiver = FakeReceiver()
    track.attach_encoded(source_for(receiver))
    receiver.feed(VP8, KEY, 0)
    for index in range(1, relay_module.MAX_QUEUED["video"] + 5):
        receiver.feed(VP8, DELTA, index * 3000)
    assert not track._packets  # a full queue is dropped whole; deltas wait for a keyframe
    assert track._need_keyframe and track.frames_dropped >= relay_module.MAX_QUEUED["video"]
    receiver.feed(VP8, KEY + b"again", 10**6)
    assert [bytes(p) for p in await drain(track)][-1] == KEY + b"again"
    track.stop()


async def test_decoder_gets_frames_only_on_demand_from_a_keyframe() -> None:
    receiver = FakeReceiver()
    source = source_for(receiver)
    wanted = False
    source.wants_decoding = lambda: wanted
    receiver.feed(VP8, KEY, 0)
    receiver.feed(VP8, DELTA, 3000)
    assert receiver.real_queue.empty() and source.frames == 2
    wanted = True
    receiver.feed(VP8, DELTA + b"x", 6000)  # a decoder cannot start here
    receiver.feed(VP8, KEY + b"y", 9000)
    receiver.feed(VP8, DELTA + b"z", 12000)
    decoded = [receiver.real_queue.get_nowait()[1].data for _ in range(receiver.real_queue.qsize())]
    assert decoded == [KEY + b"y", DELTA + b"z"]
    receiver._RTCRtpReceiver__decoder_queue.put(None)  # the receiver stopping its decoder
    assert receiver.real_queue.get_nowait() is None
    await source.stop()


async def test_codec_mismatch_falls_back_to_decoded_frames() -> None:
    modes: list[RelayMode] = []
    track = relay_for(H264, modes)
    receiver = FakeReceiver()
    source = source_for(receiver)
    track.attach_encoded(source)
    receiver.feed(VP8, KEY, 0)
    assert modes == ["transcode"] and not track._packets
    frame = av.VideoFrame(320, 240, "yuv420p")
    track._push(frame)
    assert await track.recv() is frame
    track.stop()


async def test_audio_is_relayed_frame_by_frame() -> None:
    track = relay_for(OPUS, [])
    receiver = FakeReceiver()
    track.attach_encoded(source_for(receiver, "audio"))
    for index in range(3):
        receiver.feed(OPUS, bytes([index]), 10_000 + index * 960)
    packets = await drain(track)
    assert [p.pts for p in packets] == [0, 960, 1920] and packets[0].time_base == Fraction(
        1, 48_000
    )
    assert receiver.plis == []  # audio never asks for keyframes
    track.stop()


def test_packet_encoder_packs_without_an_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_encoder(codec: RTCRtpCodecParameters) -> None:
        raise AssertionError("an encoder was created")

    monkeypatch.setattr(relay_module, "get_encoder", no_encoder)
    encoder = PacketEncoder(VP8)
    data = KEY + bytes(range(256)) * 20  # several RTP packets' worth
    packet = av.Packet(data)
    packet.pts = 123_456
    payloads, timestamp = encoder.pack(packet)
    assert timestamp == 123_456 and len(payloads) > 1
    assert b"".join(vp8_depayload(p) for p in payloads) == data
    audio = av.Packet(b"opus")
    audio.pts = 960
    assert PacketEncoder(OPUS).pack(audio) == ([b"opus"], 960)


# ---------------------------------------------------------------------- real calls


class CodecCounter:
    """Counts decoders and encoders aiortc creates, split into the server's and the clients'."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server: Counter[str] = Counter()
        self.clients: Counter[str] = Counter()
        self.calls: list[CallMedia] = []
        real_decoder = aiortc.rtcrtpreceiver.get_decoder
        real_encoder = aiortc.rtcrtpsender.get_encoder

        def get_decoder(codec: RTCRtpCodecParameters) -> Any:
            # Called by decoder_worker(loop, input_q, ...) in the receiver's decoder thread.
            input_q = sys._getframe(1).f_locals["input_q"]
            self._count("decoder", codec, any(input_q is q for q in self._server_queues()))
            return real_decoder(codec)

        def get_encoder(codec: RTCRtpCodecParameters) -> Any:
            # Called by RTCRtpSender._next_encoded_frame (or our PacketEncoder's fallback).
            caller = sys._getframe(1).f_locals["self"]
            server = isinstance(caller, PacketEncoder) or any(
                caller is s for s in self._server_senders()
            )
            self._count("encoder", codec, server)
            return real_encoder(codec)

        monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", get_decoder)
        monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)
        monkeypatch.setattr(relay_module, "get_encoder", get_encoder)

    def _count(self, what: str, codec: RTCRtpCodecParameters, server: bool) -> None:
        (self.server if server else self.clients)[f"{what} {codec.mimeType}"] += 1

    def _pcs(self) -> list[RTCPeerConnection]:
        return [
            pc for c in self.calls for p in ("customer", "advisor") if (pc := c.peer_connection(p))
        ]

    def _server_queues(self) -> list[object]:
        return [
            t.receiver._RTCRtpReceiver__decoder_queue
            for pc in self._pcs()
            for t in pc.getTransceivers()
        ]  # type: ignore[attr-defined]

    def _server_senders(self) -> list[RTCRtpSender]:
        return [t.sender for pc in self._pcs() for t in pc.getTransceivers()]


@pytest.mark.parametrize("path", ["encoded", "transcode"])
async def test_server_codecs_per_relay_path(
    path: str, ice: IceSettings, negotiate: Negotiate, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = CodecCounter(monkeypatch)
    events: list[tuple[str, str, str]] = []
    call = CallMedia(f"codecs-{path}", ice, on_event=lambda *e: events.append(e), relay=path)  # type: ignore[arg-type]
    counter.calls.append(call)
    customer = SyntheticPeer(ice, name="customer")
    advisor = SyntheticPeer(ice, name="advisor")
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await until(lambda: customer.stats.stamped >= 45 and advisor.stats.stamped >= 45)
        await until(
            lambda: customer.stats.frames["audio"] >= 50 and advisor.stats.frames["audio"] >= 50
        )
        for peer in (customer, advisor):
            assert peer.stats.out_of_order == 0 and peer.stats.missing <= 5
            assert list(peer.stats.counters) == sorted(peer.stats.counters)
        each = {
            "decoder audio/opus": 2,
            "decoder video/VP8": 2,
            "encoder audio/opus": 2,
            "encoder video/VP8": 2,
        }
        assert counter.clients == each  # the counter sees the clients' codecs...
        if path == "encoded":
            assert counter.server == {}  # ...and none on the server
            relay_events = {e for e in events if e[1] == "relay"}
            assert relay_events == {
                (p, "relay", f"{k}:encoded")
                for p in ("customer", "advisor")
                for k in ("audio", "video")
            }
            assert all(s["mode"] == "encoded" for s in call.relay_stats().values())
            # Pixels on demand: a tap makes the server decode that one track, from a keyframe.
            tap = call.subscribe("customer", "video")
            async with asyncio.timeout(10):
                assert isinstance(await tap.recv(), av.VideoFrame)
            assert counter.server == {"decoder video/VP8": 1}
            tap.stop()
        else:
            assert counter.server == each
            assert not [e for e in events if e[1] == "relay"]
    finally:
        await call.close()
        await customer.close()
        await advisor.close()


async def test_keyframe_request_reaches_the_sending_client(call_pair: Pair, until: Until) -> None:
    call, customer, advisor, _ = call_pair
    await until(lambda: advisor.stats.stamped >= 30)
    sending = next(t.sender for t in customer.pc.getTransceivers() if t.kind == "video")
    requested: list[float] = []
    original = sending._send_keyframe

    def observed() -> None:
        requested.append(time.monotonic())
        original()

    sending._send_keyframe = observed  # type: ignore[method-assign]
    server_pc = call.peer_connection("advisor")
    assert server_pc is not None
    server_sender = next(t.sender for t in server_pc.getTransceivers() if t.kind == "video")
    receiving = next(t.receiver for t in advisor.pc.getTransceivers() if t.kind == "video")
    before = call.relay_stats()["advisor/video"]
    await asyncio.sleep(relay_module.KEYFRAME_REQUEST_INTERVAL)  # past any start-up request

    await receiving._send_rtcp_pli(server_sender._ssrc)  # the advisor lost a picture

    await until(lambda: requested, 5)
    after = call.relay_stats()["advisor/video"]
    assert after["keyframe_requests_forwarded"] == before["keyframe_requests_forwarded"] + 1  # type: ignore[operator]
    # The customer's encoder (VP8, keyframes only on request) made one, and it reached the server.
    await until(
        lambda: (
            call.relay_stats()["advisor/video"]["source_keyframes"] > before["source_keyframes"]
        ),
        5,
    )  # type: ignore[operator]
    stamped = advisor.stats.stamped
    await until(lambda: advisor.stats.stamped >= stamped + 15)
    assert advisor.stats.out_of_order == 0


async def test_codec_mismatch_transcodes_and_says_so(
    ice: IceSettings, negotiate: Negotiate, until: Until
) -> None:
    events: list[tuple[str, str, str]] = []
    call = CallMedia("mismatch", ice, on_event=lambda *e: events.append(e))
    customer = SyntheticPeer(ice, name="customer")
    advisor = SyntheticPeer(ice, name="advisor")
    h264_only = [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType in ("video/H264", "video/rtx")
    ]
    for transceiver in advisor.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(h264_only)
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await until(lambda: customer.stats.stamped >= 30 and advisor.stats.stamped >= 30, 15)
        for party in ("customer", "advisor"):
            assert (party, "relay", "video:transcode") in events
            assert (party, "relay", "audio:encoded") in events
        for peer in (customer, advisor):
            assert peer.stats.out_of_order == 0
    finally:
        await call.close()
        await customer.close()
        await advisor.close()


async def test_timestamps_stay_monotonic_when_a_party_reconnects(
    ice: IceSettings, negotiate: Negotiate, until: Until
) -> None:
    call = CallMedia("reconnect-ts", ice)
    customer = SyntheticPeer(ice, audio=False, name="customer")
    advisor = SyntheticPeer(ice, audio=False, name="advisor")
    second: SyntheticPeer | None = None
    pts: list[int] = []
    record = advisor.stats.record

    def record_pts(kind: str, frame: Any) -> None:
        pts.append(frame.pts)
        record(kind, frame)

    advisor.stats.record = record_pts  # type: ignore[method-assign]
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await until(lambda: advisor.stats.stamped >= 20)
        first_pc = call.peer_connection("customer")
        assert first_pc is not None
        await customer.close()
        await first_pc.close()
        seen = len(pts)
        second = SyntheticPeer(ice, audio=False, name="customer-again")
        await negotiate(call, "customer", second)
        await until(lambda: advisor.stats.stamped >= 40)
        steps = [b - a for a, b in zip(pts, pts[1:], strict=False)]
        # A step back would reach the advisor as an RTP timestamp wrap: a jump of 2**32.
        assert all(0 < step < 10 * 90_000 for step in steps), steps
        assert len(pts) > seen + 10
    finally:
        await call.close()
        await customer.close()
        await advisor.close()
        if second is not None:
            await second.close()


def test_keyframes_are_recognised_per_codec() -> None:
    assert relay_module.is_keyframe(VP8, KEY) and not relay_module.is_keyframe(VP8, DELTA)
    idr = b"\x00\x00\x00\x01\x67sps\x00\x00\x00\x01\x68pps\x00\x00\x00\x01\x65slice"
    assert relay_module.is_keyframe(H264, idr)
    assert not relay_module.is_keyframe(H264, b"\x00\x00\x00\x01\x41slice")
    assert relay_module.is_keyframe(OPUS, b"\x01")
