"""What can be read off an encoded frame without a decoder: keyframes and frame sizes.

VP8 (RFC 6386 9.1) and H.264 in Annex B, as aiortc's depayloaders emit them. The relay uses
``is_keyframe`` to start decoders and taps at a keyframe, the recorder to mark packets and size
video streams; both go through here.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def codec_name(codec: str) -> str:
    """``"video/VP8"`` or ``"VP8"`` -> ``"vp8"``."""
    return codec.rsplit("/", 1)[-1].lower()


def vp8_dimensions(payload: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header (RFC 6386 9.1), None for other frames."""
    if len(payload) < 10 or payload[0] & 0x01 or payload[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(payload[6:8], "little") & 0x3FFF
    height = int.from_bytes(payload[8:10], "little") & 0x3FFF
    return width, height


class _BitReader:
    """MSB-first bits of an RBSP, with the exp-Golomb codes of H.264 (ITU-T H.264 9.1)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0  # in bits

    def u(self, bits: int) -> int:
        value = 0
        for _ in range(bits):
            byte = self._pos >> 3
            if byte >= len(self._data):
                raise ValueError("SPS is truncated")
            value = (value << 1) | ((self._data[byte] >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code in SPS")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _nal_units(payload: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01)."""
    units: list[bytes] = []
    start = payload.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        start = payload.find(b"\x00\x00\x01", begin)
        end = len(payload) if start < 0 else start
        units.append(payload[begin:end].rstrip(b"\x00"))  # a 4-byte start code's first 0
    return [unit for unit in units if unit]


# profile_idc values whose SPS carries chroma format, bit depths and scaling lists (7.3.2.1.1)
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def h264_sps_dimensions(sps: bytes) -> tuple[int, int]:
    """Cropped width and height from one SPS NAL unit (header byte included)."""
    if not sps or sps[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    # Drop emulation prevention bytes: 00 00 03 -> 00 00.
    rbsp = bytearray()
    zeros = 0
    for byte in sps[1:]:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        rbsp.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    bits = _BitReader(bytes(rbsp))
    profile_idc = bits.u(8)
    bits.u(16)  # constraint_set flags, reserved bits, level_idc
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc, separate_colour_plane = 1, 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            separate_colour_plane = bits.u(1)
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if bits.u(1):  # seq_scaling_list_present_flag: skip the list (7.3.2.1.1.1)
                    last = following = 8
                    for _ in range(16 if index < 6 else 64):
                        if following:
                            following = (last + bits.se() + 256) % 256
                        last = following or last
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.u(1)  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        for _ in range(bits.ue()):  # num_ref_frames_in_pic_order_cnt_cycle
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_map_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if bits.u(1):  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
        if chroma_array_type == 0:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            sub_width = 1 if chroma_array_type == 3 else 2
            sub_height = 2 if chroma_array_type == 1 else 1
            unit_x, unit_y = sub_width, sub_height * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise ValueError(f"bad SPS frame size {width}x{height}")
    return width, height


def h264_dimensions(payload: bytes) -> tuple[int, int] | None:
    """Width and height from the first SPS of an Annex B frame, None without a (valid) SPS."""
    for unit in _nal_units(payload):
        if unit[0] & 0x1F == 7:
            try:
                return h264_sps_dimensions(unit)
            except ValueError:
                logger.warning("unparsable H.264 SPS %s", unit[:16].hex())
                return None
    return None


def frame_dimensions(codec: str, payload: bytes) -> tuple[int, int] | None:
    """Width and height a VP8 key frame or an H.264 frame with an SPS carries, else None."""
    name = codec_name(codec)
    if name == "vp8":
        return vp8_dimensions(payload)
    if name == "h264":
        return h264_dimensions(payload)
    return None


def is_keyframe(codec: str, payload: bytes) -> bool:
    """True where a decoder can start: audio, VP8 key frames, H.264 IDR/SPS (Annex B)."""
    name = codec_name(codec)
    if name == "vp8":
        return bool(payload) and not payload[0] & 0x01
    if name == "h264":
        start = payload.find(b"\x00\x00\x01")
        while 0 <= start < len(payload) - 3:
            if payload[start + 3] & 0x1F in (5, 7):
                return True
            start = payload.find(b"\x00\x00\x01", start + 3)
        return False
    return True
