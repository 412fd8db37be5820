"""Where the simulator's videos show their caption and frame number, in 4x4-pixel blocks.

Two lines of text in the top-left corner, drawn with :mod:`.font`: the caption (the prompt's
first words) and ``F0042``, the frame's number (0 is the first frame). A font pixel is ``scale``
x ``scale`` blocks of 4x4 pixels, and a character cell (5x7 glyph + one column and one row of
space) is a whole number of 16x16 macroblocks, so the H.264 writer (:mod:`.media`) can code each
cell on its own. Tests read a decoded frame through this layout to tell which frame and which
caption they are looking at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kling_provider.testing.font import GLYPH_HEIGHT, GLYPH_WIDTH, glyph, known_characters, printable

__all__ = ["Layout", "frame_text", "ink", "layout", "read_text"]

CELL_W, CELL_H = GLYPH_WIDTH + 1, GLYPH_HEIGHT + 1  # font pixels per character cell
FRAME_DIGITS = 4


@dataclass(frozen=True)
class Layout:
    """Geometry of the two text lines of one picture size."""

    scale: int  # 4x4 blocks per font pixel, each way
    columns: int  # characters per line
    origin: tuple[int, int]  # (macroblock column, row) of the first line's first cell

    @property
    def cell_mbs(self) -> tuple[int, int]:
        """A character cell's size in macroblocks (width, height)."""
        return CELL_W * self.scale // 4, CELL_H * self.scale // 4

    def cell(self, line: int, index: int) -> tuple[int, int]:
        """The top-left macroblock (column, row) of character ``index`` of ``line`` (0 or 1)."""
        cw, ch = self.cell_mbs
        return self.origin[0] + index * cw, self.origin[1] + line * ch

    def caption(self, text: str) -> str:
        """The part of ``text`` the first line shows: its first words (cut mid-word only when
        the first word alone is too long)."""
        shown = printable(text)
        if len(shown) <= self.columns:
            return shown
        head = shown[: self.columns + 1]
        return head[: head.rindex(" ")].rstrip() if " " in head else head[: self.columns]


def layout(width: int, height: int) -> Layout | None:
    """The text layout of a ``width`` x ``height`` picture; None when two lines of at least
    ``F0000`` do not fit (tiny test videos show no text)."""
    scale = 4 if min(width, height) >= 1440 else 2
    mbs_w, mbs_h = width // 16, height // 16  # whole macroblocks only: no text in a cropped edge
    cw, ch = CELL_W * scale // 4, CELL_H * scale // 4
    columns = (mbs_w - 2) // cw
    if columns < 1 + FRAME_DIGITS or 1 + 2 * ch + 1 > mbs_h:
        return None
    return Layout(scale=scale, columns=columns, origin=(1, 1))


def frame_text(frame: int) -> str:
    """The second line: ``F`` and the frame number, zero-padded (it wraps at 10,000 frames)."""
    return f"F{frame % 10**FRAME_DIGITS:0{FRAME_DIGITS}d}"


def ink(ch: str, scale: int) -> list[list[bool]]:
    """A character cell in 4x4 blocks, rows of columns: True where the glyph has ink."""
    rows = glyph(ch)
    cell = []
    for y in range(CELL_H * scale):
        fy = y // scale
        line = rows[fy] if fy < GLYPH_HEIGHT else " " * GLYPH_WIDTH
        cell.append([(x // scale) < GLYPH_WIDTH and line[x // scale] == "#" for x in range(CELL_W * scale)])
    return cell


def read_text(luma: Callable[[int, int], int], width: int, height: int) -> tuple[str, str]:
    """The two lines a decoded picture shows, read back through the font: ``luma(x, y)`` gives
    a pixel's brightness (0..255). Each font pixel is judged at its centre against the cell's
    blank column, so a JPEG of the frame reads as well as the frame. Unreadable cells are ``~``.
    """
    found = layout(width, height)
    if found is None:
        return "", ""
    px = found.scale * 4  # pixels per font pixel
    lines = []
    for line in (0, 1):
        text = ""
        for index in range(found.columns):
            col, row = found.cell(line, index)
            x0, y0 = col * 16, row * 16
            bits = []
            for fy in range(GLYPH_HEIGHT):
                y = y0 + fy * px + px // 2
                background = luma(x0 + GLYPH_WIDTH * px + px // 2, y)  # the spacing column
                ink_level = 16 if background >= 128 else 232
                bits.append(
                    "".join(
                        "#"
                        if abs(luma(x0 + fx * px + px // 2, y) - ink_level)
                        < abs(luma(x0 + fx * px + px // 2, y) - background)
                        else " "
                        for fx in range(GLYPH_WIDTH)
                    )
                )
            text += next((ch for ch in known_characters() if glyph(ch) == tuple(bits)), "~")
        lines.append(text.rstrip())
    return lines[0], lines[1]
