"""Tiny, real media files made with the standard library only: an H.264 MP4, a PNG, a JPEG.

The bundled EvoLink simulator has to hand back a video that a player really opens, at the size
and length that was asked for, without ffmpeg or any third-party package at run time. So this
module writes an H.264 (ITU-T H.264 / ISO 14496-10) Constrained Baseline bitstream by hand and
muxes it into an ISO base-media (MP4, ISO 14496-12/-15) file:

* frame 1 is one IDR picture whose macroblocks are all ``I_16x16`` (clause 7.3.5, table 7-11)
  with no AC residual. The first column of macroblocks uses DC prediction (8.3.3.3, 8.3.4.1-3)
  plus a single quantised DC coefficient per colour plane (8.5.10, 8.5.11), which sets that
  band's colour; every other macroblock uses horizontal prediction (8.3.3.2, 8.3.4.2) and
  copies it across. The picture is a vertical gradient between two colours taken from ``seed``,
  in 16-pixel bands, and the encoder works out exactly what a decoder will reconstruct;
* every later frame is a P picture made of one ``mb_skip_run`` covering the whole picture
  (7.3.4): P_Skip with a zero motion vector (8.4.1.1) is a copy of the previous frame.

A 15 s 3840x2160 file is about 40 KB and takes a few milliseconds to make.

With a ``caption``, every frame also shows text (:mod:`.overlay`: the caption's first words and
the frame's own number), so a decoded picture tells which video and which frame it is: the text's
character cells are I_NxN macroblocks (Intra_4x4, one DC level per 4x4 block, worked out so a
decoder reconstructs them exactly), drawn in the IDR picture and, in each P picture, only where
a digit of the frame number changed. ``sound`` adds a silent AAC-LC track. Such a 15 s 4K file
is about 400 KB and takes tens of milliseconds (a 5 s 720p one about 15 ms).
"""

from __future__ import annotations

import bisect
import functools
import io
import math
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "Mp4Info",
    "band_colours",
    "looks_like_mp4",
    "make_jpeg",
    "make_mp4",
    "make_png",
    "mp4_info",
    "mp4_parts",
]

# ---------------------------------------------------------------------------------------------
# Bit-level helpers (clause 7.2 descriptors, 9.1 Exp-Golomb codes)
# ---------------------------------------------------------------------------------------------


def _u(n: int, value: int) -> str:
    """u(n): ``value`` as ``n`` bits, most significant first."""
    return format(value, f"0{n}b") if n else ""


@functools.lru_cache(maxsize=65536)
def _ue(value: int) -> str:
    """ue(v), 9.1: ``value + 1`` in binary, preceded by one zero per bit after the first."""
    b = format(value + 1, "b")
    return "0" * (len(b) - 1) + b


def _se(value: int) -> str:
    """se(v), 9.1.1: k > 0 maps to 2k - 1, k <= 0 to -2k, then ue(v)."""
    return _ue(2 * value - 1 if value > 0 else -2 * value)


def _rbsp(bits: str) -> bytes:
    """rbsp_trailing_bits() (7.3.2.11): a stop bit, then zeros up to a byte boundary."""
    bits += "1"
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


_EMULATION = re.compile(b"\x00\x00(?=[\x00-\x03])")


def _nal(header: int, rbsp: bytes) -> bytes:
    """A NAL unit (7.3.1): header byte, then the RBSP with emulation_prevention_three_byte
    inserted after any two zero bytes that precede a byte <= 3 (7.4.1)."""
    if b"\x00\x00" in rbsp:
        rbsp = _EMULATION.sub(b"\x00\x00\x03", rbsp)
    return bytes((header,)) + rbsp


# ---------------------------------------------------------------------------------------------
# Sequence and picture parameter sets
# ---------------------------------------------------------------------------------------------

_NAL_SPS = 0x67  # nal_ref_idc 3, nal_unit_type 7
_NAL_PPS = 0x68  # nal_ref_idc 3, nal_unit_type 8
_NAL_IDR = 0x65  # nal_ref_idc 3, nal_unit_type 5
_NAL_P = 0x41  # nal_ref_idc 2, nal_unit_type 1 (a reference picture: see _p_slice)
_LOG2_MAX_FRAME_NUM = 16
_SLICE_QP = 22  # see _dc_levels: at QP 22 the DC steps are 1/2 (luma) and 1 (chroma) sample

# Table A-1: level_idc, MaxMBPS, MaxFS (MaxDpbMbs >= MaxFS on every row, and we keep 1 frame).
_LEVELS = (
    (10, 1485, 99),
    (11, 3000, 396),
    (12, 6000, 396),
    (13, 11880, 396),
    (20, 11880, 396),
    (21, 19800, 792),
    (22, 20250, 1620),
    (30, 40500, 1620),
    (31, 108000, 3600),
    (32, 216000, 5120),
    (40, 245760, 8192),
    (42, 522240, 8704),
    (50, 589824, 22080),
    (51, 983040, 36864),
    (52, 2073600, 36864),
    (60, 4177920, 139264),
    (61, 8355840, 139264),
    (62, 16711680, 139264),
)


def _level_idc(mbs_w: int, mbs_h: int, fps: int) -> int:
    """The lowest level whose frame size, macroblock rate and frame-dimension limit (A.3.1 f/g:
    each side <= sqrt(8 * MaxFS) macroblocks) admit the picture."""
    frame_mbs = mbs_w * mbs_h
    for level, max_mbps, max_fs in _LEVELS:
        side = 8 * max_fs
        if frame_mbs <= max_fs and frame_mbs * fps <= max_mbps and mbs_w**2 <= side and mbs_h**2 <= side:
            return level
    raise ValueError(f"{mbs_w * 16}x{mbs_h * 16} at {fps} fps is beyond H.264 level 6.2")


def _sps(width: int, height: int, fps: int) -> bytes:
    """seq_parameter_set_rbsp (7.3.2.1.1) for Constrained Baseline, with VUI (E.1.1)."""
    mbs_w, mbs_h = -(-width // 16), -(-height // 16)
    bits = [
        _u(8, 66),  # profile_idc: Baseline
        _u(8, 0b11000000),  # constraint_set0/1 (Constrained Baseline), set2..5 and reserved 0
        _u(8, _level_idc(mbs_w, mbs_h, fps)),
        _ue(0),  # seq_parameter_set_id
        _ue(_LOG2_MAX_FRAME_NUM - 4),  # log2_max_frame_num_minus4
        _ue(2),  # pic_order_cnt_type 2: output order = decoding order (8.2.1.3)
        _ue(1),  # max_num_ref_frames
        "0",  # gaps_in_frame_num_value_allowed_flag
        _ue(mbs_w - 1),  # pic_width_in_mbs_minus1
        _ue(mbs_h - 1),  # pic_height_in_map_units_minus1
        "1",  # frame_mbs_only_flag
        "1",  # direct_8x8_inference_flag
    ]
    crop_right, crop_bottom = (mbs_w * 16 - width) // 2, (mbs_h * 16 - height) // 2
    if crop_right or crop_bottom:
        # frame_cropping_flag; offsets count CropUnitX/Y = 2 samples for 4:2:0 frames (7.4.2.1.1).
        bits += ["1", _ue(0), _ue(crop_right), _ue(0), _ue(crop_bottom)]
    else:
        bits.append("0")
    bits += [
        "1",  # vui_parameters_present_flag
        "1",  # aspect_ratio_info_present_flag
        _u(8, 1),  # aspect_ratio_idc 1: square samples
        "0",  # overscan_info_present_flag
        "1",  # video_signal_type_present_flag
        _u(3, 5),  # video_format: unspecified
        "0",  # video_full_range_flag: studio range, as _colours() produces
        "1",  # colour_description_present_flag
        _u(8, 1),  # colour_primaries: BT.709
        _u(8, 1),  # transfer_characteristics: BT.709
        _u(8, 1),  # matrix_coefficients: BT.709, the matrix _ycbcr() uses
        "0",  # chroma_loc_info_present_flag
        "1",  # timing_info_present_flag
        _u(32, 1),  # num_units_in_tick
        _u(32, 2 * fps),  # time_scale: two ticks per frame (E.2.1)
        "1",  # fixed_frame_rate_flag
        "0",  # nal_hrd_parameters_present_flag
        "0",  # vcl_hrd_parameters_present_flag
        "0",  # pic_struct_present_flag
        "1",  # bitstream_restriction_flag
        "1",  # motion_vectors_over_pic_boundaries_flag
        _ue(0),  # max_bytes_per_pic_denom: no limit
        _ue(0),  # max_bits_per_mb_denom: no limit
        _ue(15),  # log2_max_mv_length_horizontal: the value inferred when absent
        _ue(15),  # log2_max_mv_length_vertical
        _ue(0),  # max_num_reorder_frames: a decoder may output each frame at once
        _ue(1),  # max_dec_frame_buffering
    ]
    return _nal(_NAL_SPS, _rbsp("".join(bits)))


def _pps() -> bytes:
    """pic_parameter_set_rbsp (7.3.2.2): CAVLC, one slice group, deblocking control present."""
    bits = [
        _ue(0),  # pic_parameter_set_id
        _ue(0),  # seq_parameter_set_id
        "0",  # entropy_coding_mode_flag: CAVLC
        "0",  # bottom_field_pic_order_in_frame_present_flag
        _ue(0),  # num_slice_groups_minus1
        _ue(0),  # num_ref_idx_l0_default_active_minus1
        _ue(0),  # num_ref_idx_l1_default_active_minus1
        "0",  # weighted_pred_flag
        _u(2, 0),  # weighted_bipred_idc
        _se(0),  # pic_init_qp_minus26
        _se(0),  # pic_init_qs_minus26
        _se(0),  # chroma_qp_index_offset: QPc = QPy below 30 (table 8-15)
        "1",  # deblocking_filter_control_present_flag
        "0",  # constrained_intra_pred_flag
        "0",  # redundant_pic_cnt_present_flag
    ]
    return _nal(_NAL_PPS, _rbsp("".join(bits)))


# ---------------------------------------------------------------------------------------------
# Residual: one DC coefficient per block, reconstructed exactly as a decoder does
# ---------------------------------------------------------------------------------------------

# LevelScale4x4(m, 0, 0) = weightScale4x4 (Flat_4x4_16: 16) * normAdjust4x4(m, 0, 0) (8.5.9).
_LEVEL_SCALE_DC = tuple(16 * v for v in (10, 11, 13, 14, 16, 18))


def _luma_dc_residual(level: int, qp: int) -> int:
    """The sample offset a lone Intra16x16 DC level adds to every luma sample of a macroblock.

    8.5.10: the 4x4 Hadamard of a matrix whose only non-zero entry is c[0][0] is that value
    everywhere; it is scaled (eq. 8-326/8-327), becomes the DC of each 4x4 block (d00 = c00,
    8.5.12.1) and the inverse transform of a DC-only block is that DC in every position
    (8.5.12.2), so each residual sample is (dcY + 32) >> 6.
    """
    scale = _LEVEL_SCALE_DC[qp % 6]
    shift = qp // 6
    dc = (level * scale) << (shift - 6) if qp >= 36 else (level * scale + (1 << (5 - shift))) >> (6 - shift)
    return (dc + 32) >> 6


def _chroma_dc_residual(level: int, qpc: int) -> int:
    """As _luma_dc_residual for a 4:2:0 chroma DC level (8.5.11.2, eq. 8-330: ... >> 5)."""
    dc = ((level * _LEVEL_SCALE_DC[qpc % 6]) << (qpc // 6)) >> 5
    return (dc + 32) >> 6


class _DcQuantiser:
    """Maps a wanted sample offset to the DC level that reconstructs closest to it.

    ``offset_of`` gives the exact offset of every level a clip of 0..255 can need; the offsets
    grow with the level, so a bisection over the distinct offsets finds the best one (ties go to
    the smaller level, which costs fewer bits)."""

    def __init__(self, offset_of: Callable[[int], int], max_level: int) -> None:
        self.offset = {lv: offset_of(lv) for lv in range(-max_level, max_level + 1)}
        best: dict[int, int] = {}
        for lv, off in self.offset.items():
            if off not in best or abs(lv) < abs(best[off]):
                best[off] = lv
        self._level_for = best
        self._offsets = sorted(best)

    def level(self, delta: int) -> int:
        i = bisect.bisect_left(self._offsets, delta)
        near = self._offsets[max(i - 1, 0) : i + 1]
        return self._level_for[min(near, key=lambda off: (abs(off - delta), abs(self._level_for[off])))]


# QPc equals QPy for QPy < 30 with chroma_qp_index_offset 0 (table 8-15).
_LUMA_DC = _DcQuantiser(lambda lv: _luma_dc_residual(lv, _SLICE_QP), 520)
_CHROMA_DC = _DcQuantiser(lambda lv: _chroma_dc_residual(lv, _SLICE_QP), 260)

# coeff_token (table 9-5) for TotalCoeff 0/1 in the two tables used here:
# 0 <= nC < 2 (every luma block: no neighbour ever has AC coefficients) and nC = -1 (chroma DC).
_COEFF_TOKEN = {
    (0, 0, 0): "1",
    (0, 1, 0): "000101",
    (0, 1, 1): "01",
    (-1, 0, 0): "01",
    (-1, 1, 0): "000111",
    (-1, 1, 1): "1",
}


def _residual_block(level: int, n_c: int) -> str:
    """residual_block_cavlc (7.3.5.3.2, 9.2) for a block whose only non-zero coefficient, if
    any, is the first one. Only the DC blocks are coded here, and their own TotalCoeff never
    counts towards a neighbour's nC (9.2.1), so nC stays 0 for luma and -1 for chroma DC."""
    if level == 0:
        return _COEFF_TOKEN[(n_c, 0, 0)]
    if abs(level) == 1:  # a trailing one: just its sign (9.2.2)
        bits = _COEFF_TOKEN[(n_c, 1, 1)] + ("1" if level < 0 else "0")
    else:
        # 9.2.2.1 in reverse: levelCode, less 2 because it is the first coefficient and
        # TrailingOnes < 3; suffixLength starts at 0 since TotalCoeff <= 10.
        code = (2 * level - 2 if level > 0 else -2 * level - 1) - 2
        if code < 14:
            level_bits = "0" * code + "1"
        elif code < 30:  # level_prefix 14 has a 4-bit suffix when suffixLength is 0
            level_bits = "0" * 14 + "1" + _u(4, code - 14)
        else:  # level_prefix 15 (the Baseline maximum): 12-bit suffix, levelCode offset 30
            level_bits = "0" * 15 + "1" + _u(12, code - 30)
        bits = _COEFF_TOKEN[(n_c, 1, 0)] + level_bits
    # total_zeros = 0 with TotalCoeff 1 is "1" in table 9-7 (4x4) and 9-9a (chroma DC);
    # no run_before follows when no zeros are left.
    return bits + "1"


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------

# mb_type I_16x16_1_0_0 (horizontal, no residual) = 2, intra_chroma_pred_mode horizontal = 1,
# mb_qp_delta 0, Intra16x16DCLevel with TotalCoeff 0: exactly 8 bits, "01101011".
_COPY_MB = _ue(2) + _ue(1) + _se(0) + _COEFF_TOKEN[(0, 0, 0)]


def _band_mb(pred: tuple[int, int, int], target: tuple[int, int, int]) -> tuple[str, tuple[int, int, int]]:
    """The first macroblock of a row: DC prediction (the band above, or 128 for the very first
    macroblock, 8.3.3.3/8.3.4.3) plus DC levels that move it as close to ``target`` as the
    quantiser allows. Returns its bits and the colour a decoder will reconstruct."""
    ly = _LUMA_DC.level(target[0] - pred[0])
    lcb = _CHROMA_DC.level(target[1] - pred[1])
    lcr = _CHROMA_DC.level(target[2] - pred[2])
    chroma = bool(lcb or lcr)
    mb_type = 3 + (4 if chroma else 0)  # I_16x16_2_1_0 (DC, chroma DC coded) or I_16x16_2_0_0
    bits = _ue(mb_type) + _ue(0) + _se(0) + _residual_block(ly, 0)
    if chroma:
        bits += _residual_block(lcb, -1) + _residual_block(lcr, -1)
    got = (
        _clip(pred[0] + _LUMA_DC.offset[ly]),
        _clip(pred[1] + _CHROMA_DC.offset[lcb]),
        _clip(pred[2] + _CHROMA_DC.offset[lcr]),
    )
    return bits, got


def _clip(v: int) -> int:
    return 0 if v < 0 else 255 if v > 255 else v


def _idr_slice(mbs_w: int, band_bits: list[str], text: dict[int, str] | None = None) -> bytes:
    """An IDR picture, one I slice (7.3.3 header, 7.3.4 data); ``text`` maps macroblock
    addresses to I_NxN macroblocks (bits after mb_type) drawn in place of copies."""
    header = (
        _ue(0)  # first_mb_in_slice
        + _ue(7)  # slice_type: I (all slices of the picture)
        + _ue(0)  # pic_parameter_set_id
        + _u(_LOG2_MAX_FRAME_NUM, 0)  # frame_num
        + _ue(0)  # idr_pic_id
        + "0"  # dec_ref_pic_marking: no_output_of_prior_pics_flag
        + "0"  # long_term_reference_flag
        + _se(_SLICE_QP - 26)  # slice_qp_delta
        + _ue(1)  # disable_deblocking_filter_idc: flat bands need no filtering
    )
    copy_row = _COPY_MB * (mbs_w - 1)
    rows = []
    for row, band in enumerate(band_bits):
        start = row * mbs_w
        if text and any(start + col in text for col in range(1, mbs_w)):
            cells = (_I_NXN_IN_I + text[a] if a in text else _COPY_MB for a in range(start + 1, start + mbs_w))
            rows.append(band + "".join(cells))
        else:
            rows.append(band + copy_row)
    return _nal(_NAL_IDR, _rbsp(header + "".join(rows)))


def _p_slice(frame_num: int, mbs: int, coded: dict[int, str] | None = None) -> bytes:
    """A P picture of skipped macroblocks: P_Skip copies the previous frame (8.4.1.1 gives a
    zero motion vector, as no neighbour moves). ``coded`` maps macroblock addresses to I_NxN
    macroblocks (bits after mb_type) drawn instead: mb_skip_run counts the copies between them.

    P pictures are reference pictures with increasing frame_num: pic_order_cnt_type 2 forbids
    two consecutive non-reference pictures (7.4.2.1.1), and max_num_ref_frames 1 keeps just the
    previous one by the sliding window (8.2.5.3)."""
    bits = (
        _ue(0)  # first_mb_in_slice
        + _ue(5)  # slice_type: P (all slices of the picture)
        + _ue(0)  # pic_parameter_set_id
        + _u(_LOG2_MAX_FRAME_NUM, frame_num % (1 << _LOG2_MAX_FRAME_NUM))
        + "0"  # num_ref_idx_active_override_flag
        + "0"  # ref_pic_list_modification_flag_l0
        + "0"  # dec_ref_pic_marking: adaptive_ref_pic_marking_mode_flag (sliding window)
        + _se(_SLICE_QP - 26)  # slice_qp_delta: QP 22, which the text macroblocks assume
        + _ue(1)  # disable_deblocking_filter_idc
    )
    parts = [bits]
    done = 0
    for address in sorted(coded or ()):
        parts += [_ue(address - done), _I_NXN_IN_P, coded[address]]  # type: ignore[index]
        done = address + 1
    if done < mbs:
        parts.append(_ue(mbs - done))  # the copies to the end of the picture
    return _nal(_NAL_P, _rbsp("".join(parts)))


# ---------------------------------------------------------------------------------------------
# Text: character cells of I_NxN macroblocks (Intra_4x4, DC prediction, one DC level per block)
# ---------------------------------------------------------------------------------------------

_I_NXN_IN_I = _ue(0)  # mb_type I_NxN in an I slice (table 7-11)
_I_NXN_IN_P = _ue(5)  # the same in a P slice: intra types follow the 5 P types (table 7-13)
#: coded_block_pattern me(v) codeNum of each luma pattern with no chroma, Intra_4x4 column of table 9-4.
_INTRA_CBP_CODE = (3, 29, 30, 17, 31, 18, 37, 8, 32, 38, 19, 9, 20, 10, 11, 2)
#: (x, y) in blocks of luma4x4BlkIdx 0..15 inside a macroblock (6.4.3: 8x8 quadrants, then 4x4 in each).
_BLK_XY = tuple(((i // 4) % 2 * 2 + i % 2, (i // 4) // 2 * 2 + (i % 4) // 2) for i in range(16))
#: Luma of the ink: dark on light bands, light on dark ones. Multiples of 4, like the bands.
_INK_DARK, _INK_LIGHT = 16, 232
_INTRA_MB_PREFIX = "1" * 16 + _ue(1)  # every block predicted DC (the predicted mode); chroma horizontal


def _text_cell(cell: tuple[tuple[bool, ...], ...], above: int, rows: tuple[int, ...], ink: int) -> tuple[str, ...]:
    """The macroblocks of one character cell (raster order inside it, bits after mb_type).

    Each 4x4 block is flat: DC prediction (8.3.1.2.3) from the flat blocks above and to the
    left, (4 * top + 4 * left + 4) >> 3, plus one DC level; at QP 22 a lone DC level adds exactly
    2 * level to every sample (8.5.12: (level * 256 + 1) >> 1, then (d + 32) >> 6). With the
    bands, the ink and so every prediction a multiple of 4, each block reconstructs exactly its
    target: the ink, or ``rows[r]``, the band luma of the cell's macroblock row ``r``. The blocks
    left of the cell and above it hold the background (``above``: the band above the cell), as
    a cell ends in a blank column and a blank row. Chroma is copied from the left (the band's).
    """
    height, width = len(cell), len(cell[0])
    # The cell's luma, framed by the background: grid[y + 1][x + 1] is block (x, y).
    grid = [[above] * (width + 1)] + [[rows[y // 4]] + [0] * width for y in range(height)]
    out = []
    for my in range(0, height, 4):
        for mx in range(0, width, 4):
            levels = []
            for bx, by in _BLK_XY:
                x, y = mx + bx + 1, my + by + 1
                pred = (grid[y - 1][x] + grid[y][x - 1] + 1) >> 1
                target = ink if cell[y - 1][x - 1] else rows[(y - 1) // 4]
                level = (target - pred) // 2
                grid[y][x] = pred + 2 * level
                levels.append(level)
            cbp = sum(1 << i8 for i8 in range(4) if any(levels[i8 * 4 : i8 * 4 + 4]))
            bits = _INTRA_MB_PREFIX + _ue(_INTRA_CBP_CODE[cbp])
            if cbp:
                bits += _se(0) + "".join(  # mb_qp_delta, then the blocks of each coded 8x8 (7.3.5.3)
                    _luma_block(levels[b]) for i8 in range(4) if cbp >> i8 & 1 for b in range(i8 * 4, i8 * 4 + 4)
                )
            out.append(bits)
    if any(grid[y + 1][x + 1] != (ink if cell[y][x] else rows[y // 4]) for y in range(height) for x in range(width)):
        raise AssertionError("text luma must stay a multiple of 4 to be drawn exactly")
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def _luma_block(level: int) -> str:
    """A 4x4 luma block with only its DC level (nC is 0 or 1: no block has more than one coefficient)."""
    return _residual_block(level, 0)


class _TextWriter:
    """Macroblocks that draw the overlay's text (kling_provider.testing.overlay) on a picture."""

    def __init__(self, width: int, height: int, band_luma: list[int]) -> None:
        from kling_provider.testing.overlay import layout

        self.layout = layout(width, height)
        self.mbs_w = -(-width // 16)
        self.band_luma = band_luma
        self._cells: dict[tuple[str, int], tuple[str, ...]] = {}

    def ink_luma(self, line: int) -> int:
        assert self.layout is not None
        row = self.layout.cell(line, 0)[1]
        return _INK_DARK if self.band_luma[row] >= 128 else _INK_LIGHT

    def line(self, line: int, text: str, changed_from: str | None = None) -> dict[int, str]:
        """Macroblock address -> bits drawing ``text`` on ``line`` (only the characters that
        differ from ``changed_from``, when given)."""
        if self.layout is None:
            return {}
        out: dict[int, str] = {}
        cw = self.layout.cell_mbs[0]
        for i, char in enumerate(text[: self.layout.columns]):
            if changed_from is not None and i < len(changed_from) and changed_from[i] == char:
                continue
            col, row = self.layout.cell(line, i)
            for k, bits in enumerate(self._cell(char, line)):
                out[(row + k // cw) * self.mbs_w + col + k % cw] = bits
        return out

    def _cell(self, char: str, line: int) -> tuple[str, ...]:
        cached = self._cells.get((char, line))
        if cached is None:
            from kling_provider.testing.overlay import ink

            assert self.layout is not None
            _, row = self.layout.cell(line, 0)
            ch = self.layout.cell_mbs[1]
            cell = tuple(tuple(r) for r in ink(char, self.layout.scale))
            rows = tuple(self.band_luma[row : row + ch])
            cached = self._cells[(char, line)] = _text_cell(cell, self.band_luma[row - 1], rows, self.ink_luma(line))
        return cached


# ---------------------------------------------------------------------------------------------
# Colours
# ---------------------------------------------------------------------------------------------


def _mix64(x: int) -> int:
    """SplitMix64's finaliser: spreads a seed's bits so that neighbouring seeds look unrelated."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]


def _ycbcr(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    """BT.709 studio-range Y'CbCr (Y 16..235, Cb/Cr 16..240) of an R'G'B' triple in 0..1."""
    r, g, b = rgb
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (
        round(16 + 219 * y),
        round(128 + 224 * (b - y) / 1.8556),
        round(128 + 224 * (r - y) / 1.5748),
    )


def _colours(seed: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Top and bottom colour of the gradient for ``seed``: a light tint above, a deeper
    neighbouring hue below, like a sky."""
    h = _mix64(seed & 0xFFFFFFFFFFFFFFFF)
    hue = (h & 0xFFFF) / 65536
    shift = 0.08 + ((h >> 16) & 0xFF) / 255 * 0.17
    top = _ycbcr(_hsv(hue, 0.45, 0.92))
    bottom = _ycbcr(_hsv((hue + shift) % 1.0, 0.75, 0.45))
    return top, bottom


def _band_targets(mbs_h: int, seed: int, quantum: int = 1) -> list[tuple[int, int, int]]:
    (y0, cb0, cr0), (y1, cb1, cr1) = _colours(seed)
    n = max(mbs_h - 1, 1)
    return [
        (
            round((y0 + (y1 - y0) * i / n) / quantum) * quantum,
            round(cb0 + (cb1 - cb0) * i / n),
            round(cr0 + (cr1 - cr0) * i / n),
        )
        for i in range(mbs_h)
    ]


def _bands(mbs_h: int, seed: int, quantum: int = 1) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Bits of each row's first macroblock and the Y'CbCr colour each row decodes to. With
    ``quantum`` 4 every band's luma is a multiple of 4 (see _text_cell: text stays exact)."""
    pred = (128, 128, 128)
    bits: list[str] = []
    colours: list[tuple[int, int, int]] = []
    for target in _band_targets(mbs_h, seed, quantum):
        b, pred = _band_mb(pred, target)
        bits.append(b)
        colours.append(pred)
    return bits, colours


def band_colours(height: int, seed: int = 0, caption: str | None = None) -> list[tuple[int, int, int]]:
    """The studio-range (Y, Cb, Cr) that each 16-row band of ``make_mp4(..., seed=seed,
    caption=caption)`` decodes to, top first (the last band may be cropped), outside the text.
    For tests that check decoded pixels."""
    return _bands(-(-height // 16), seed, 1 if caption is None else 4)[1]


# ---------------------------------------------------------------------------------------------
# MP4 (ISO/IEC 14496-12 boxes, 14496-15 avc1/avcC)
# ---------------------------------------------------------------------------------------------


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def _moov(
    width: int,
    height: int,
    timescale: int,
    delta: int,
    sizes: list[int],
    sps: bytes,
    pps: bytes,
    chunk_offset: int,
    audio: tuple[int, int] | None = None,
) -> bytes:
    """The movie box: the video track, and with ``audio`` = (frames, chunk offset) a silent AAC track."""
    count = len(sizes)
    media_duration = count * delta
    movie_duration = round(media_duration * 1000 / timescale)  # mvhd timescale: 1000
    avcc = _box(
        b"avcC",
        bytes((1, sps[1], sps[2], sps[3], 0xFF, 0xE1)),  # version, profile, compat, level, 4-byte lengths, 1 SPS
        struct.pack(">H", len(sps)),
        sps,
        bytes((1,)),
        struct.pack(">H", len(pps)),
        pps,
    )
    avc1 = _box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),  # data_reference_index
        bytes(16),  # pre_defined, reserved
        struct.pack(">HH", width, height),
        struct.pack(">II", 0x00480000, 0x00480000),  # 72 dpi
        bytes(4),
        struct.pack(">H", 1),  # frame_count per sample
        bytes((11,)) + b"kling-media".ljust(31, b"\0"),  # compressorname, a Pascal string
        struct.pack(">Hh", 0x0018, -1),  # depth, pre_defined
        avcc,
        _box(b"pasp", struct.pack(">II", 1, 1)),
    )
    chunk_box = _chunk_offsets(chunk_offset)
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, count, delta)),
        _full_box(b"stss", 0, 0, struct.pack(">II", 1, 1)),  # only sample 1 is a sync sample
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, count, 1)),  # one chunk holds all
        _full_box(b"stsz", 0, 0, struct.pack(f">II{count}I", 0, count, *sizes)),
        chunk_box,
    )
    minf = _box(
        b"minf",
        _full_box(b"vmhd", 0, 1, bytes(8)),
        _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1))),
        stbl,
    )
    mdia = _box(
        b"mdia",
        _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, media_duration, 0x55C4, 0)),  # 'und'
        _full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\0"),
        minf,
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        3,  # track_enabled | track_in_movie
        struct.pack(">IIIII", 0, 0, 1, 0, movie_duration),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0),  # layer, alternate_group, volume, reserved
        _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH", 0, 0, 1000, movie_duration, 0x00010000, 0x0100),
        bytes(10),
        _MATRIX,
        bytes(24),
        struct.pack(">I", 3 if audio else 2),  # next_track_ID
    )
    tracks = [_box(b"trak", tkhd, mdia)]
    if audio is not None:
        tracks.append(_audio_trak(*audio))
    return _box(b"moov", mvhd, *tracks)


def _chunk_offsets(offset: int) -> bytes:
    """stco, or co64 past 4 GiB: one chunk at ``offset``."""
    if offset < 1 << 32:
        return _full_box(b"stco", 0, 0, struct.pack(">II", 1, offset))
    return _full_box(b"co64", 0, 0, struct.pack(">IQ", 1, offset))


# AAC-LC (ISO/IEC 14496-3): 48 kHz mono, 1024 samples a frame. Each frame is one raw_data_block
# holding a single channel element with max_sfb 0 (no spectral data: silence) and END:
# id_syn_ele 0, tag 0, global_gain 160, ics_info (long window, window_shape 1, max_sfb 0, no
# prediction), no pulse/TNS/gain control, then id_syn_ele 7 (END): 32 bits.
_AAC_RATE, _AAC_FRAME = 48000, 1024
_AAC_SILENCE = bytes.fromhex("01402007")
_AAC_CONFIG = bytes.fromhex("1188")  # AudioSpecificConfig: object type 2 (LC), rate index 3, 1 channel


def _descriptor(tag: int, payload: bytes) -> bytes:
    return bytes((tag, len(payload))) + payload  # lengths here are all < 128: one size byte


def _audio_frames(duration_s: float) -> int:
    return max(1, math.ceil(duration_s * _AAC_RATE / _AAC_FRAME))


def _audio_trak(frames: int, chunk_offset: int) -> bytes:
    """A silent AAC track (track 2): ``frames`` frames of 4 bytes in one chunk."""
    duration = frames * _AAC_FRAME
    decoder_config = _descriptor(
        0x04,  # DecoderConfigDescriptor: MPEG-4 audio, an audio stream, no bitrate promised
        bytes((0x40, 0x15)) + bytes(3) + bytes(8) + _descriptor(0x05, _AAC_CONFIG),
    )
    esds = _full_box(
        b"esds", 0, 0, _descriptor(0x03, struct.pack(">HB", 2, 0) + decoder_config + _descriptor(0x06, b"\x02"))
    )
    mp4a = _box(
        b"mp4a",
        bytes(6),
        struct.pack(">H", 1),  # data_reference_index
        bytes(8),
        struct.pack(">HHHH", 1, 16, 0, 0),  # channelcount, samplesize, pre_defined, reserved
        struct.pack(">I", _AAC_RATE << 16),
        esds,
    )
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), mp4a),
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, _AAC_FRAME)),
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, frames, 1)),
        _full_box(b"stsz", 0, 0, struct.pack(">II", len(_AAC_SILENCE), frames)),  # every frame the same size
        _chunk_offsets(chunk_offset),
    )
    minf = _box(
        b"minf",
        _full_box(b"smhd", 0, 0, bytes(4)),
        _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1))),
        stbl,
    )
    mdia = _box(
        b"mdia",
        _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, _AAC_RATE, duration, 0x55C4, 0)),
        _full_box(b"hdlr", 0, 0, bytes(4), b"soun", bytes(12), b"SoundHandler\0"),
        minf,
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, 2, 0, round(duration * 1000 / _AAC_RATE)),
        bytes(8),
        struct.pack(">hhhH", 0, 1, 0x0100, 0),  # layer, alternate_group, volume 1.0, reserved
        _MATRIX,
        struct.pack(">II", 0, 0),
    )
    return _box(b"trak", tkhd, mdia)


_FTYP = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso2", b"avc1", b"mp41")


def make_mp4(
    width: int,
    height: int,
    duration_s: float,
    fps: int = 24,
    seed: int = 0,
    *,
    caption: str | None = None,
    sound: bool = False,
    moov_last: bool = False,
) -> bytes:
    """A playable H.264 MP4 of ``width`` x ``height`` pixels lasting ``round(duration_s * fps)``
    frames: a still vertical gradient whose colours depend on ``seed``. Deterministic.

    With ``caption`` (even ""), every frame shows the caption's first words and its own number
    (kling_provider.testing.overlay). ``sound`` adds a silent AAC track. Width and height must be
    even (4:2:0 cropping works in 2-pixel steps, 7.4.2.1.1); the moov box comes before mdat, so a
    player can start while the file downloads, unless ``moov_last``.
    """
    head, _, tail = mp4_parts(width, height, duration_s, fps, seed, caption=caption, sound=sound, moov_last=moov_last)
    return head + tail


def mp4_parts(
    width: int,
    height: int,
    duration_s: float,
    fps: int = 24,
    seed: int = 0,
    *,
    caption: str | None = None,
    sound: bool = False,
    moov_last: bool = False,
    mdat_padding: int = 0,
) -> tuple[bytes, int, bytes]:
    """:func:`make_mp4` as ``(head, padding, tail)``: the file is ``head``, then ``padding`` zero
    bytes (unreferenced, at the end of mdat), then ``tail``. A benchmark writes a 1 GiB video
    this way without holding it: seek over the padding."""
    if not (isinstance(width, int) and isinstance(height, int)) or width < 2 or height < 2:
        raise ValueError(f"width and height must be integers >= 2, got {width!r}x{height!r}")
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for 4:2:0 video, got {width}x{height}")
    if not isinstance(fps, int) or not 1 <= fps <= 1000:
        raise ValueError(f"fps must be an integer between 1 and 1000, got {fps!r}")
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s must be a positive number, got {duration_s!r}")
    if mdat_padding < 0:
        raise ValueError(f"mdat_padding must be >= 0, got {mdat_padding}")
    frames = max(1, round(duration_s * fps))
    sps, pps = _sps(width, height, fps), _pps()
    samples = _video_samples(width, height, frames, seed, caption)
    sizes = [len(s) for s in samples]
    video = b"".join(samples)
    audio_frames = _audio_frames(frames / fps) if sound else 0
    data = video + _AAC_SILENCE * audio_frames

    timescale, delta = fps * 512, 512  # as ffmpeg: plenty of ticks for edits, no rounding
    payload = len(data) + mdat_padding
    if payload + 8 < 1 << 32:
        mdat_header = struct.pack(">I4s", 8 + payload, b"mdat")
    else:  # largesize (14496-12, 4.2)
        mdat_header = struct.pack(">I4sQ", 1, b"mdat", 16 + payload)

    def moov_at(offset: int) -> bytes:
        audio = (audio_frames, offset + len(video)) if sound else None
        return _moov(width, height, timescale, delta, sizes, sps, pps, offset, audio)

    if moov_last:
        offset = len(_FTYP) + len(mdat_header)
        return b"".join((_FTYP, mdat_header, data)), mdat_padding, moov_at(offset)
    moov = moov_at(0)
    offset = len(_FTYP) + len(moov) + len(mdat_header)
    moov = moov_at(offset)
    if len(_FTYP) + len(moov) + len(mdat_header) != offset:  # stco grew into co64
        offset = len(_FTYP) + len(moov) + len(mdat_header)
        moov = moov_at(offset)
    return b"".join((_FTYP, moov, mdat_header, data)), mdat_padding, b""


def _video_samples(width: int, height: int, frames: int, seed: int, caption: str | None) -> list[bytes]:
    """Each frame's NAL unit with its 4-byte length (avcC lengthSizeMinusOne = 3; SPS and PPS live in avcC)."""
    mbs_w, mbs_h = -(-width // 16), -(-height // 16)
    mbs = mbs_w * mbs_h
    band_bits, colours = _bands(mbs_h, seed, 1 if caption is None else 4)
    if caption is None:
        pictures = [_idr_slice(mbs_w, band_bits)] + [_p_slice(i, mbs) for i in range(1, frames)]
    else:
        from kling_provider.testing.overlay import frame_text

        writer = _TextWriter(width, height, [c[0] for c in colours])
        shown = writer.layout.caption(caption) if writer.layout else ""
        pictures = [_idr_slice(mbs_w, band_bits, {**writer.line(0, shown), **writer.line(1, frame_text(0))})]
        for i in range(1, frames):
            pictures.append(_p_slice(i, mbs, writer.line(1, frame_text(i), changed_from=frame_text(i - 1))))
    return [struct.pack(">I", len(p)) + p for p in pictures]


# ---------------------------------------------------------------------------------------------
# Reading MP4 back
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mp4Info:
    """What the first video track of an MP4 says about itself."""

    width: int
    height: int
    duration_s: float
    frame_count: int
    fps: float


def looks_like_mp4(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file, at least 8) starts with an ISO-BMFF ``ftyp``
    box, as every MP4 does: a cheap check that a download is a video and not an error page."""
    return len(head) >= 8 and head[4:8] == b"ftyp" and struct.unpack(">I", head[:4])[0] >= 8


_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def _boxes(f: BinaryIO, start: int, end: int | None) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes between ``start`` and ``end`` (None:
    end of file), seeking over payloads, so mdat is never read."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while end is None or pos + 8 <= end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            if head and end is not None:
                raise ValueError("truncated MP4 box header")
            break
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:
            large = f.read(8)
            if len(large) < 8:
                raise ValueError("truncated MP4 box header")
            size, header = struct.unpack(">Q", large)[0], 16
        elif size == 0:  # the box runs to the end of its container
            size = (f.seek(0, io.SEEK_END) if end is None else end) - pos
        if size < header or (end is not None and pos + size > end):
            raise ValueError(f"malformed MP4 box {kind!r} at offset {pos}")
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _read(f: BinaryIO, start: int, end: int) -> bytes:
    f.seek(start)
    data = f.read(end - start)
    if len(data) != end - start:
        raise ValueError("truncated MP4 box")
    return data


def _video_track(f: BinaryIO) -> dict[bytes, bytes]:
    top = _boxes(f, 0, None)
    moov = [b for b in top if b[0] == b"moov"]
    if not moov:
        raise ValueError("no moov box: not an MP4 file, or an incomplete one")
    for kind, start, end in _boxes(f, moov[0][1], moov[0][2]):
        if kind != b"trak":
            continue
        found: dict[bytes, bytes] = {}
        _collect(f, start, end, found)
        hdlr = found.get(b"hdlr", b"")
        if hdlr[8:12] == b"vide":
            return found
    raise ValueError("the MP4 file has no video track")


_WANTED = (b"tkhd", b"mdhd", b"hdlr", b"stsd", b"stts", b"stsz", b"stz2")


def _collect(f: BinaryIO, start: int, end: int, found: dict[bytes, bytes]) -> None:
    """The payloads of the boxes mp4_info needs, from one trak, descending into containers."""
    for kind, s, e in _boxes(f, start, end):
        if kind in _CONTAINERS:
            _collect(f, s, e, found)
        elif kind in _WANTED:
            found.setdefault(kind, _read(f, s, e))


def mp4_info(data_or_path: bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO) -> Mp4Info:
    """Size, duration, frame count and frame rate of the first video track of an MP4, from its
    boxes alone (tkhd/stsd, mdhd, stts, stsz). Accepts bytes, a path or a binary file object;
    raises ValueError when the data is not a readable MP4 with a video track."""
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        return _mp4_info(io.BytesIO(bytes(data_or_path)))
    if isinstance(data_or_path, (str, os.PathLike)):
        with open(data_or_path, "rb") as f:
            return _mp4_info(f)
    return _mp4_info(data_or_path)


def _mp4_info(f: BinaryIO) -> Mp4Info:
    try:
        track = _video_track(f)
        tkhd, mdhd = track[b"tkhd"], track[b"mdhd"]
        # tkhd: width and height are the last 8 bytes (16.16 fixed point), in either version.
        width, height = (v >> 16 for v in struct.unpack(">II", tkhd[-8:]))
        if (not width or not height) and b"stsd" in track:
            width, height = struct.unpack(">HH", track[b"stsd"][8 + 8 + 24 : 8 + 8 + 28])
        if mdhd[0] == 1:
            timescale, duration = struct.unpack(">IQ", mdhd[20:32])
        else:
            timescale, duration = struct.unpack(">II", mdhd[12:20])
        stts = track.get(b"stts", b"")
        entries = struct.unpack(f">{2 * struct.unpack('>I', stts[4:8])[0]}I", stts[8:]) if stts else ()
        counts, deltas = entries[0::2], entries[1::2]
        if b"stsz" in track:
            frame_count = struct.unpack(">I", track[b"stsz"][8:12])[0]
        elif b"stz2" in track:
            frame_count = struct.unpack(">I", track[b"stz2"][8:12])[0]
        else:
            frame_count = sum(counts)
        if not duration or duration == 0xFFFFFFFF:
            duration = sum(c * d for c, d in zip(counts, deltas, strict=True))
    except (KeyError, struct.error, IndexError) as exc:
        raise ValueError(f"not a readable MP4 file ({exc.__class__.__name__}: {exc})") from None
    if not timescale:
        raise ValueError("not a readable MP4 file (mdhd timescale is 0)")
    duration_s = duration / timescale
    if len(set(deltas)) == 1 and deltas[0]:
        fps = timescale / deltas[0]
    else:
        fps = frame_count / duration_s if duration_s else 0.0
    return Mp4Info(width=width, height=height, duration_s=duration_s, frame_count=frame_count, fps=fps)


# ---------------------------------------------------------------------------------------------
# PNG and JPEG fixtures
# ---------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int, height: int, rgb: tuple[int, int, int] = (64, 128, 192)) -> bytes:
    """A single-colour 8-bit RGB PNG. Filtered, such an image is almost all zero bytes (the
    first row with filter Sub, the others with filter Up), so zlib makes even a 4000x3000 image
    a few tens of kilobytes, quickly."""
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1, got {width}x{height}")
    if len(rgb) != 3 or any(not 0 <= c <= 255 for c in rgb):
        raise ValueError(f"rgb must be three components in 0..255, got {rgb}")
    first = b"\x01" + bytes(rgb) + bytes(3 * (width - 1))  # Sub: each pixel minus its left one
    up = bytes(1 + 3 * width)
    up = b"\x02" + up[1:]  # Up: each pixel minus the one above
    comp = zlib.compressobj(6)
    parts = [comp.compress(first)]
    batch = max(1, (1 << 20) // len(up))  # a megabyte of rows at a time, whatever the size
    block = up * batch
    for _ in range((height - 1) // batch):
        parts.append(comp.compress(block))
    parts.append(comp.compress(up * ((height - 1) % batch)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


# Baseline JPEG (ITU-T T.81). A flat image has one non-zero coefficient in the first block of
# each component (the DC; later blocks' DC differences are 0) and no AC coefficients, so the
# Huffman tables only need two symbols each.
_ZIGZAG_Q = bytes([1] * 64)  # quantisation table of ones: DC is coded exactly


def make_jpeg(width: int, height: int, rgb: tuple[int, int, int] = (64, 128, 192)) -> bytes:
    """A single-colour baseline JPEG (JFIF, YCbCr 4:4:4, 8x8 MCUs) written without any library."""
    if not 1 <= width <= 65535 or not 1 <= height <= 65535:
        raise ValueError(f"width and height must be 1..65535, got {width}x{height}")
    if len(rgb) != 3 or any(not 0 <= c <= 255 for c in rgb):
        raise ValueError(f"rgb must be three components in 0..255, got {rgb}")
    r, g, b = rgb
    # JFIF full-range BT.601 conversion.
    ycc = (
        0.299 * r + 0.587 * g + 0.114 * b,
        128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
        128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
    )
    # Level shift (A.3.1) and forward DCT of a flat block: F(0,0) = 8 * (sample - 128).
    dcs = [max(-2047, min(2047, round(8 * (c - 128)))) for c in ycc]

    # One DC Huffman table holding the categories used (T.81 F.1.2.1) and one AC table holding
    # only EOB (0x00). Codes are canonical (Annex C): lengths 1 and 2.
    cats = sorted({0} | {abs(d).bit_length() for d in dcs})
    dc_codes = _canonical_codes(cats)
    ac_codes = {0x00: (1, 0)}  # EOB: a 1-bit code "0"

    mcus = (-(-width // 8)) * (-(-height // 8))
    # The first MCU codes each component's DC; every later block repeats it: difference 0.
    first = "".join(_huff(dc_codes, abs(d).bit_length()) + _dc_bits(d) + _huff(ac_codes, 0) for d in dcs)
    rest = _huff(dc_codes, 0) + _huff(ac_codes, 0)
    scan_bits = first + rest * (3 * (mcus - 1))
    scan_bits += "1" * (-len(scan_bits) % 8)  # pad with 1-bits (F.1.2.3)
    scan = int(scan_bits, 2).to_bytes(len(scan_bits) // 8, "big") if scan_bits else b""
    scan = scan.replace(b"\xff", b"\xff\x00")  # byte stuffing (F.1.2.3)

    def seg(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    def dht(cls_id: int, codes: dict[int, tuple[int, int]]) -> bytes:
        counts = [0] * 16
        symbols = sorted(codes, key=lambda s: (codes[s][0], codes[s][1]))
        for s in symbols:
            counts[codes[s][0] - 1] += 1
        return bytes([cls_id, *counts, *symbols])

    return b"".join(
        (
            b"\xff\xd8",
            seg(0xE0, b"JFIF\0" + struct.pack(">BBBHHBB", 1, 1, 0, 1, 1, 0, 0)),
            seg(0xDB, b"\x00" + _ZIGZAG_Q),
            seg(0xC0, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"),
            seg(0xC4, dht(0x00, dc_codes) + dht(0x10, ac_codes)),
            seg(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00"),
            scan,
            b"\xff\xd9",
        )
    )


def _canonical_codes(symbols: list[int]) -> dict[int, tuple[int, int]]:
    """(length, code) for up to 3 symbols in canonical order, never an all-ones code (C.2)."""
    lengths = {1: [1], 2: [1, 2], 3: [2, 2, 2], 4: [2, 2, 3, 3]}[len(symbols)]
    codes: dict[int, tuple[int, int]] = {}
    code, prev = 0, lengths[0]
    for sym, length in zip(symbols, lengths, strict=True):
        code <<= length - prev
        prev = length
        codes[sym] = (length, code)
        code += 1
    return codes


def _huff(codes: dict[int, tuple[int, int]], symbol: int) -> str:
    length, code = codes[symbol]
    return _u(length, code)


def _dc_bits(diff: int) -> str:
    """The extra bits after a DC category (F.1.2.1.1): negative values as diff - 1 in ssss bits."""
    size = abs(diff).bit_length()
    if not size:
        return ""
    return _u(size, diff if diff > 0 else diff + (1 << size) - 1)
