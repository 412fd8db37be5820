"""The Kling video models on EvoLink's endpoint and what each one documents that the others do not.

One row per model, read from its OpenAPI document (``testing/openapi/<model>.json``). The request
classes serve a family each (text- or image-to-video) and check a request against its model's
row, so a rule is written once, as data, and the docs table can be checked against it.

Decisions where the documents are silent or unclear (also in ``docs/operators/*.md``):

* Fields a model's document does not list (turbo's ``sound``, ``negative_prompt``,
  ``model_params``; o3's ``negative_prompt``) are refused, not sent: the vendor might ignore
  them, and a silently dropped negative prompt or sound track is a video the user did not ask for.
* ``kling-o3-text-to-video`` gives no length for a shot's prompt; its siblings say 512, and so
  do we (a stricter client costs nothing, a rejected task may cost credits).
* ``kling-o3-image-to-video`` lists no required image, but an image-to-video request without
  any image is a text-to-video one: it needs ``image_start`` or ``image_urls``.
* o3's image count (for "last frame not supported when total image count exceeds 2", "image
  count + element count <= 7" and ``<<<image_N>>>``) counts every image sent: ``image_start``,
  ``image_end`` and each of ``image_urls``. The vendor examples number ``<<<image_N>>>`` over
  those images, so N may be at most their count.
* turbo text-to-video's multi-shot is written into the prompt (``镜头 n, m, words;``); ``shots=``
  is rendered in that syntax for it, and a hand-written one is checked by the same rules.
* turbo image-to-video documents images of up to 50 MB; images this package uploads are still
  checked against 10 MB, the file API's limit as far as anything says (URLs are not measured).

Where the product page (``shared/seed``, which documents kling-v3-image-to-video field by field)
and that model's newer OpenAPI document disagree, the client does not refuse: it sends what the
page documents and lets EvoLink judge (a refused request creates no task and costs nothing). The
page also says the EvoLink console and API responses are the source of truth. See
:data:`DOCUMENT_DISAGREEMENTS`; rules both documents agree on stay strict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Family = Literal["text-to-video", "image-to-video"]


@dataclass(frozen=True)
class VideoModelRules:
    """What one model accepts beyond the fields every Kling video model shares."""

    name: str
    family: Family
    qualities: tuple[str, ...] = ("720p", "1080p", "4k")
    sound: bool = True
    negative_prompt: bool = True
    #: ``model_params`` at all (multi-shot, watermark, elements).
    model_params: bool = True
    #: Shot types it takes (none: no multi-shot mode).
    shot_types: tuple[str, ...] = ("customize", "intelligence")
    #: Customised shots go into the prompt (``镜头 n, m, words;``), not ``model_params``.
    prompt_shots: bool = False
    prompt_required: bool = True
    max_elements: int = 0
    aspect_ratio: bool = True
    image_start_required: bool = False
    image_end: bool = False
    #: ``image_end`` may stand without ``image_start`` (kling-v3-image-to-video on the product
    #: page: "at least one of image_start or image_end must be provided").
    image_end_alone: bool = False
    image_urls: bool = False

    @property
    def multi_shot(self) -> bool:
        return bool(self.shot_types)


_RULES = (
    VideoModelRules("kling-v3-text-to-video", "text-to-video"),
    VideoModelRules(
        "kling-v3-turbo-text-to-video",
        "text-to-video",
        qualities=("720p", "1080p"),
        sound=False,
        negative_prompt=False,
        model_params=False,
        shot_types=("customize",),
        prompt_shots=True,
    ),
    VideoModelRules(
        "kling-o3-text-to-video",
        "text-to-video",
        negative_prompt=False,
        shot_types=("customize",),
        max_elements=7,
    ),
    VideoModelRules(
        "kling-v3-image-to-video",
        "image-to-video",
        prompt_required=False,
        max_elements=3,
        # The product page's reading (the OpenAPI document requires image_start and has no
        # aspect_ratio): see DOCUMENT_DISAGREEMENTS.
        aspect_ratio=True,
        image_end=True,
        image_end_alone=True,
    ),
    VideoModelRules(
        "kling-v3-turbo-image-to-video",
        "image-to-video",
        qualities=("720p", "1080p"),
        sound=False,
        negative_prompt=False,
        model_params=False,
        shot_types=(),
        prompt_required=False,
        aspect_ratio=False,
        image_start_required=True,
    ),
    VideoModelRules(
        "kling-o3-image-to-video",
        "image-to-video",
        negative_prompt=False,
        shot_types=("customize",),
        max_elements=7,
        image_end=True,
        image_urls=True,
    ),
)

#: Model name -> its rules, in the order the docs list them.
VIDEO_MODEL_RULES: Mapping[str, VideoModelRules] = MappingProxyType({rules.name: rules for rules in _RULES})

TEXT_TO_VIDEO_MODEL_NAMES = tuple(r.name for r in _RULES if r.family == "text-to-video")
IMAGE_TO_VIDEO_MODEL_NAMES = tuple(r.name for r in _RULES if r.family == "image-to-video")


@dataclass(frozen=True)
class Disagreement:
    """One point where the product page and a model's OpenAPI document say different things."""

    model: str
    field: str
    product_page: str
    openapi: str
    #: What the client does: never a refusal the page contradicts.
    client: str


#: Where the product page and the OpenAPI documents disagree, and what the client does.
DOCUMENT_DISAGREEMENTS: tuple[Disagreement, ...] = (
    Disagreement(
        "kling-v3-image-to-video",
        "image_end",
        "at least one of image_start or image_end must be provided (an end frame may stand alone)",
        "image_start is required; a last frame needs a first frame",
        "accepts an end frame alone and sends it",
    ),
    Disagreement(
        "kling-v3-image-to-video",
        "aspect_ratio",
        "16:9, 9:16 or 1:1; may be omitted when a first frame is given (the video adapts to it)",
        "not a parameter (the video follows the first frame)",
        "accepts 16:9, 9:16 or 1:1 and sends it",
    ),
    Disagreement(
        "kling-v3-image-to-video",
        "quality",
        "720p or 1080p",
        "720p, 1080p or 4k",
        "accepts 4k too (its price is published nowhere: the estimate is unknown)",
    ),
    Disagreement(
        "kling-v3-image-to-video",
        "elements",
        "element_list items are {element_id: long} (a number)",
        "element_list items are {element_id: string}",
        "accepts numbers and strings, sends strings (the same id either way)",
    ),
)

#: kling-o3-image-to-video: elements with a first frame, images and elements together, and
#: the most images that still allow a last frame.
O3_MAX_ELEMENTS_WITH_FIRST_FRAME = 3
O3_MAX_IMAGES_AND_ELEMENTS = 7
O3_MAX_IMAGES_WITH_LAST_FRAME = 2

__all__ = [
    "DOCUMENT_DISAGREEMENTS",
    "IMAGE_TO_VIDEO_MODEL_NAMES",
    "O3_MAX_ELEMENTS_WITH_FIRST_FRAME",
    "O3_MAX_IMAGES_AND_ELEMENTS",
    "O3_MAX_IMAGES_WITH_LAST_FRAME",
    "TEXT_TO_VIDEO_MODEL_NAMES",
    "VIDEO_MODEL_RULES",
    "Disagreement",
    "Family",
    "VideoModelRules",
]
