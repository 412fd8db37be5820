"""A contact sheet: a batch's poster frames on one image, each labelled, for a reviewer.

Give it the XCom results of video tasks run with ``poster=True`` (a mapped task's ``.output`` is
the list, in map-index order)::

    from airflow.sdk import task
    from kling_provider.video.sheet import contact_sheet

    @task
    def sheet(results, output_uri):
        return contact_sheet(results, output_uri, conn_id="aws_default")

    variants = KlingTextToVideoOperator.partial(task_id="variant", poster=True, ...).expand(prompt=PROMPTS)
    sheet(variants.output, output_uri="s3://videos/{{ run_id }}/sheet.jpg")  # templated: a task argument

Tile ``i`` shows result ``i``'s poster frame and, below it, ``captions[i]`` (default ``#i``, the
map index) and ``<duration> s | <credits> credits``. ``.png`` output is lossless, ``.jpg`` smaller.
Needs the ``review`` extra (Pillow), imported only when a sheet is made.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kling_provider.exceptions import KlingValidationError
from kling_provider.storage import HeaderCheck, resolve_destination, write_file_atomically
from kling_provider.video.poster import require_review_extra

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["contact_sheet", "render_label", "tile_label"]

BACKGROUND = (24, 24, 24)
INK = (240, 240, 240)
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_MAGIC = {"PNG": ((b"\x89PNG\r\n\x1a\n",), "a PNG image"), "JPEG": ((b"\xff\xd8\xff",), "a JPEG image")}
_GAP = 8


def tile_label(result: Mapping[str, Any], index: int, caption: str | None = None) -> str:
    """Two lines: the caption (default ``#<index>``), then duration and credits."""
    video = result.get("video") or {}
    duration = video.get("duration_s", result.get("duration"))
    credits = result.get("credits_reserved")
    if credits is None:
        credits = result.get("estimated_credits")
    seconds = "? s" if duration is None else f"{float(duration):.1f} s"
    paid = "? credits" if credits is None else f"{float(credits):g} credits"
    return f"{caption if caption is not None else f'#{index}'}\n{seconds} | {paid}"


def render_label(text: str, width: int, height: int) -> Image:
    """The label strip under a tile, exactly as :func:`contact_sheet` draws it."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    draw.multiline_text((_GAP, _GAP // 2), text, fill=INK, font=_font(height), spacing=_GAP // 2)
    return strip


def contact_sheet(
    results: Sequence[Mapping[str, Any]],
    output_uri: str,
    *,
    conn_id: str | None = None,
    captions: Sequence[str] | None = None,
    columns: int | None = None,
    tile_width: int = 480,
) -> dict[str, Any]:
    """Lay out the poster frames of ``results`` (video XCom results with ``poster_uri``) as one
    labelled image and write it to ``output_uri`` atomically (``.png``/``.jpg``; local path,
    ``file://`` or object storage with ``conn_id``, which also reads the posters).

    Returns ``{"uri", "width", "height", "tiles": [{"index", "label", "poster_uri", "box",
    "label_box"}]}`` with boxes as ``[x, y, width, height]`` in the sheet, tile ``i`` being
    ``results[i]``, laid out left to right, then top to bottom.
    """
    require_review_extra("contact_sheet")
    from PIL import Image

    # By index: iterating a mapped task's lazy XCom sequence asks for one item past the end (an
    # "XCom not found" error in the task log).
    items = [results[i] for i in range(len(results))]
    image_format = _format(output_uri)
    _check_arguments(items, captions, columns, tile_width)
    posters = [_open_poster(result, conn_id) for result in items]
    cols = columns or min(len(items), 4)
    rows = math.ceil(len(items) / cols)
    picture_h = max(round(tile_width * p.height / p.width) for p in posters)
    picture_h = min(picture_h, tile_width)  # portrait posters fit a square: rows stay short
    label_h = max(40, tile_width // 7)
    cell_w, cell_h = tile_width + _GAP, picture_h + label_h + _GAP
    sheet = Image.new("RGB", (cols * cell_w + _GAP, rows * cell_h + _GAP), BACKGROUND)
    tiles = []
    for i, (result, poster) in enumerate(zip(items, posters, strict=True)):
        x0, y0 = _GAP + (i % cols) * cell_w, _GAP + (i // cols) * cell_h
        scale = min(tile_width / poster.width, picture_h / poster.height)
        w, h = max(1, round(poster.width * scale)), max(1, round(poster.height * scale))
        box = [x0 + (tile_width - w) // 2, y0 + (picture_h - h) // 2, w, h]
        sheet.paste(poster.convert("RGB").resize((w, h), Image.Resampling.LANCZOS), (box[0], box[1]))
        label = tile_label(result, i, captions[i] if captions is not None else None)
        label_box = [x0, y0 + picture_h, tile_width, label_h]
        sheet.paste(render_label(label, tile_width, label_h), (label_box[0], label_box[1]))
        tiles.append(
            {"index": i, "label": label, "poster_uri": result["poster_uri"], "box": box, "label_box": label_box}
        )
    buffer = io.BytesIO()
    sheet.save(buffer, format=image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    magics, what = _MAGIC[image_format]
    uri = write_file_atomically(output_uri, buffer.getvalue(), HeaderCheck(magics, what), conn_id)
    return {"uri": uri, "width": sheet.width, "height": sheet.height, "tiles": tiles}


def _format(output_uri: str) -> str:
    suffix = "." + str(output_uri).rsplit(".", 1)[-1].lower() if "." in str(output_uri) else ""
    if suffix not in _FORMATS:
        raise KlingValidationError(
            f"output_uri: must end in .png, .jpg or .jpeg (got {str(output_uri)[-40:]!r})", param="output_uri"
        )
    return _FORMATS[suffix]


def _check_arguments(
    items: list[Mapping[str, Any]], captions: Sequence[str] | None, columns: int | None, tile_width: int
) -> None:
    if not items:
        raise KlingValidationError("results: no videos to lay out (an empty list)", param="results")
    for i, result in enumerate(items):
        if not isinstance(result, Mapping) or not result.get("poster_uri"):
            raise KlingValidationError(
                f"results[{i}]: has no poster_uri: run the video operator with poster=True "
                f"(got {type(result).__name__})",
                param="results",
            )
    if captions is not None and len(captions) != len(items):
        raise KlingValidationError(
            f"captions: must have one caption per result ({len(items)}), got {len(captions)}", param="captions"
        )
    if columns is not None and (not isinstance(columns, int) or columns < 1):
        raise KlingValidationError(f"columns: must be a whole number >= 1 (got {columns!r})", param="columns")
    if not isinstance(tile_width, int) or not 64 <= tile_width <= 4096:
        raise KlingValidationError(f"tile_width: must be 64 to 4096 pixels (got {tile_width!r})", param="tile_width")


def _open_poster(result: Mapping[str, Any], conn_id: str | None) -> Image:
    from PIL import Image

    path = resolve_destination(result["poster_uri"], conn_id)
    with path.open("rb") as handle:
        data = handle.read()
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _font(label_h: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=max(10, (label_h - 3 * _GAP // 2) // 2 - 2))
