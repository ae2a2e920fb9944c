"""H.264 through the encoded relay: packing, codec matching, SPS sizes, and a real recorded call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path

import av
import pytest
from aiortc import RTCRtpSender
from aiortc.codecs import CODECS
from aiortc.codecs.h264 import H264Encoder, h264_depayload
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from contact_center.media import relay as relay_module
from contact_center.media.call import CallMedia, Party
from contact_center.media.ice import IceSettings
from contact_center.media.relay import PacketEncoder, RelayMode, RelayTrack, same_format
from contact_center.tools.synthetic import SyntheticPeer, read_stamp
from recordings.bitstream import h264_dimensions, h264_sps_dimensions
from tests.media.test_media_relay import CodecCounter, FakeReceiver, drain, source_for

Until = Callable[..., Awaitable[None]]
Negotiate = Callable[[CallMedia, Party, SyntheticPeer], Awaitable[None]]

H264 = next(c for c in CODECS["video"] if c.mimeType == "video/H264")  # 42001f, mode 1


def h264_codec(profile_level_id: str = "42001f", mode: str = "1") -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=90_000,
        payloadType=H264.payloadType,
        parameters={
            "level-asymmetry-allowed": "1",
            "packetization-mode": mode,
            "profile-level-id": profile_level_id,
        },
    )


def encode_h264(
    width: int,
    height: int,
    count: int,
    *,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> list[bytes]:
    """``count`` libx264 frames (Annex B, SPS/PPS before the IDR), a noisy picture."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, pix_fmt
    codec.time_base = Fraction(1, 30)
    codec.options = {"tune": "zerolatency", **(options or {})}
    out: list[bytes] = []
    noise = bytes(range(251)) * (2 * (width + 64) * (height + 16) // 251)
    for index in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(noise[index * 7 : index * 7 + plane.buffer_size])
        frame = frame.reformat(format=pix_fmt)
        frame.pts = index
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out


def nal_types(annex_b: bytes) -> list[int]:
    return [unit[0] & 0x1F for unit in H264Encoder._split_bitstream(annex_b)]


# ---------------------------------------------------------------------- units


def test_packet_encoder_packs_h264_without_an_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_encoder(codec: RTCRtpCodecParameters) -> None:
        raise AssertionError("an encoder was created")

    monkeypatch.setattr(relay_module, "get_encoder", no_encoder)
    frames = encode_h264(640, 480, 4)
    assert nal_types(frames[0])[:2] == [7, 8] and 5 in nal_types(frames[0])
    encoder = PacketEncoder(H264)
    for index, data in enumerate(frames):
        packet = av.Packet(data)
        packet.pts = 4_000_000_000 + 3000 * index  # the relay's clock; may exceed 32 bits
        packet.time_base = Fraction(1, 90_000)
        payloads, timestamp = encoder.pack(packet)
        assert timestamp == packet.pts
        assert all(len(p) <= 1300 for p in payloads)
        # What the far end's receiver assembles: the same NAL units, in order.
        rebuilt = b"".join(h264_depayload(p) for p in payloads)
        assert list(H264Encoder._split_bitstream(rebuilt)) == list(
            H264Encoder._split_bitstream(data)
        )
        kinds = {p[0] & 0x1F for p in payloads}
        if index == 0:  # SPS+PPS aggregated (STAP-A), the large IDR fragmented (FU-A)
            assert {24, 28} <= kinds
    # Same payloads as aiortc's own H264Encoder.pack (MediaPlayer(decode=False)).
    packet = av.Packet(frames[0])
    packet.pts, packet.time_base = 3000, Fraction(1, 90_000)
    assert encoder.pack(packet) == H264Encoder().pack(packet)


def test_h264_codec_matching() -> None:
    assert same_format(h264_codec(), h264_codec())
    assert same_format(h264_codec("42e01f"), h264_codec("42e01f"))
    assert same_format(h264_codec("42e01e"), h264_codec("42e01f"))  # lower level: fine
    assert not same_format(h264_codec("42e01f"), h264_codec("42e01e"))  # above the far end's
    assert not same_format(h264_codec("42001f"), h264_codec("42e01f"))  # other profile
    assert not same_format(h264_codec("640c1f"), h264_codec("42e01f"))
    assert not same_format(h264_codec(mode="0"), h264_codec(mode="0"))  # we pack mode 1 only
    assert not same_format(h264_codec(), h264_codec(mode="0"))
    vp8 = next(c for c in CODECS["video"] if c.mimeType == "video/VP8")
    assert not same_format(vp8, h264_codec()) and same_format(vp8, vp8)


async def test_h264_relays_from_an_idr_and_transcodes_on_a_profile_mismatch() -> None:
    frames = encode_h264(320, 240, 3)
    modes: list[RelayMode] = []
    track = RelayTrack("video", name="test", on_mode=lambda _, m: modes.append(m))
    track.send_codec = h264_codec()
    receiver = FakeReceiver()
    track.attach_encoded(source_for(receiver))
    receiver.feed(h264_codec(), frames[1], 0)  # a P slice: dropped, keyframe requested
    receiver.feed(h264_codec(), frames[0], 3000)
    receiver.feed(h264_codec(), frames[1], 6000)
    await asyncio.sleep(0)
    assert modes == ["encoded"] and receiver.plis == [7]
    assert [bytes(p) for p in await drain(track)] == frames[:2]
    receiver.feed(h264_codec("42e01f"), frames[0], 9000)  # the source changed profile
    assert modes == ["encoded", "transcode"] and not track._packets
    track.stop()


def test_sps_dimensions_match_the_decoder() -> None:
    cases: list[tuple[int, int, str, dict[str, str]]] = [
        (320, 240, "yuv420p", {}),
        (642, 362, "yuv420p", {}),  # not macroblock-aligned: frame cropping
        (1920, 1080, "yuv420p", {}),
        (640, 480, "yuv420p", {"x264-params": "interlaced=1"}),  # field macroblocks
        (322, 246, "yuv422p", {}),  # High 4:2:2
        (321, 243, "yuv444p", {}),  # High 4:4:4: crop units of 1
        (176, 144, "yuv420p", {"profile": "baseline"}),
    ]
    for width, height, pix_fmt, options in cases:
        frames = encode_h264(width, height, 1, pix_fmt=pix_fmt, options=options)
        assert h264_dimensions(frames[0]) == (width, height), (width, height, pix_fmt)
        decoder = av.CodecContext.create("h264", "r")
        decoded = decoder.decode(av.Packet(frames[0])) + decoder.decode(None)
        assert (decoded[0].width, decoded[0].height) == (width, height)
    assert h264_dimensions(b"\x00\x00\x00\x01\x41slice") is None  # no SPS
    assert h264_dimensions(b"\x00\x00\x00\x01\x67\x42") is None  # truncated: None, no raise
    with pytest.raises(ValueError):
        h264_sps_dimensions(b"\x68pps")


class _Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, value: int, count: int) -> None:
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(0, code.bit_length() - 1)
        self.u(code, code.bit_length())

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        bits = self.bits + [1]  # rbsp_stop_one_bit
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray()
        zeros = 0
        for byte in raw:  # emulation prevention
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def test_sps_with_scaling_lists_and_poc_type_1() -> None:
    """Branches libx264 never writes: SPS scaling lists, pic_order_cnt_type 1, zero bytes."""
    bits = _Bits()
    bits.u(100, 8)  # High
    bits.u(0, 8)
    bits.u(0, 8)  # level_idc 0
    bits.ue(63)  # sps id (out of range, but it makes the bytes 00 00 02: an escape)
    bits.ue(1)  # 4:2:0
    bits.ue(0)
    bits.ue(0)
    bits.u(0, 1)
    bits.u(1, 1)  # seq_scaling_matrix_present_flag
    for index in range(8):
        present = index in (0, 6)
        bits.u(int(present), 1)
        if present:
            for step in range(16 if index < 6 else 64):
                bits.se(3 if step % 2 else -3)
    bits.ue(0)  # log2_max_frame_num_minus4
    bits.ue(1)  # pic_order_cnt_type 1
    bits.u(0, 1)
    bits.se(-2)
    bits.se(1)
    bits.ue(2)
    bits.se(5)
    bits.se(-5)
    bits.ue(1)  # max_num_ref_frames
    bits.u(0, 1)
    bits.ue(79)  # 1280 wide
    bits.ue(44)  # 45 map units
    bits.u(1, 1)  # frame_mbs_only
    bits.u(1, 1)
    bits.u(1, 1)  # cropping: 8 px right (4 units), 4 px bottom (2 units)
    for crop in (0, 4, 0, 2):
        bits.ue(crop)
    sps = b"\x67" + bits.rbsp()
    assert b"\x00\x00\x03" in sps
    assert h264_dimensions(b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01\x68\xce") == (
        1272,
        716,
    )


# ---------------------------------------------------------------------- a real call


def h264_only(peer: SyntheticPeer) -> None:
    codecs = [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType in ("video/H264", "video/rtx")
    ]
    for transceiver in peer.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(codecs)


async def test_h264_call_is_relayed_and_recorded_without_decoding(
    ice: IceSettings,
    negotiate: Negotiate,
    until: Until,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    counter = CodecCounter(monkeypatch)
    events: list[tuple[str, str, str]] = []
    call = CallMedia("h264", ice, on_event=lambda *e: events.append(e))
    counter.calls.append(call)
    customer = SyntheticPeer(ice, name="customer")
    advisor = SyntheticPeer(ice, name="advisor")
    h264_only(customer)
    h264_only(advisor)
    files = call.start_recording(tmp_path)
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        # About three seconds of video each way (30 fps), recorded meanwhile.
        await until(lambda: customer.stats.stamped >= 90 and advisor.stats.stamped >= 90, 20)
        for peer in (customer, advisor):
            assert peer.stats.out_of_order == 0 and peer.stats.missing <= 5, peer.stats
            assert list(peer.stats.counters) == sorted(peer.stats.counters)
        assert {e for e in events if e[1] == "relay"} == {
            (p, "relay", f"{k}:encoded")
            for p in ("customer", "advisor")
            for k in ("audio", "video")
        }
        stats = call.relay_stats()
        assert all(s["mode"] == "encoded" for s in stats.values()), stats
        assert counter.server == {}, counter.server  # nothing decoded or encoded on the server
        assert counter.clients == {
            "decoder audio/opus": 2,
            "decoder video/H264": 2,
            "encoder audio/opus": 2,
            "encoder video/H264": 2,
        }
        # A PLI from the advisor goes upstream to the customer, whose x264 answers with an IDR
        # that the server recognises as a keyframe (x264 also makes IDRs on scene cuts).
        server_pc = call.peer_connection("advisor")
        assert server_pc is not None
        server_sender = next(t.sender for t in server_pc.getTransceivers() if t.kind == "video")
        receiving = next(t.receiver for t in advisor.pc.getTransceivers() if t.kind == "video")

        def advisor_video(name: str) -> int:
            value = call.relay_stats()["advisor/video"][name]
            assert isinstance(value, int)
            return value

        await asyncio.sleep(relay_module.KEYFRAME_REQUEST_INTERVAL)  # past start-up requests
        forwarded = advisor_video("keyframe_requests_forwarded")
        requests = advisor_video("source_keyframe_requests")
        keyframes = advisor_video("source_keyframes")
        await receiving._send_rtcp_pli(server_sender._ssrc)
        await until(lambda: advisor_video("keyframe_requests_forwarded") == forwarded + 1, 5)
        assert advisor_video("source_keyframe_requests") > requests
        await until(lambda: advisor_video("source_keyframes") > keyframes, 5)
        stamped = advisor.stats.stamped
        await until(lambda: advisor.stats.stamped >= stamped + 15)
        assert advisor.stats.out_of_order == 0 and counter.server == {}
    finally:
        await call.close()
        await customer.close()
        await advisor.close()
    recorder = call.recorder
    assert recorder is not None
    videos = sorted(p for p in files if "-video-" in p.name)
    assert [p.name for p in videos] == ["advisor-video-1.mkv", "customer-video-1.mkv"]
    for path in videos:
        assert recorder.stats()[path.name]["error"] is None
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert (stream.codec_context.width, stream.codec_context.height) == (640, 480)
            decoded = list(container.decode(stream))
            duration = float(container.duration or 0) / 1e6
        counters = [s.counter for f in decoded if (s := read_stamp(f)) is not None]
        assert len(decoded) >= 75 and len(counters) >= 0.9 * len(decoded), (path, len(decoded))
        assert counters == sorted(counters) and duration >= 2.5
        assert (decoded[0].width, decoded[0].height) == (640, 480)
