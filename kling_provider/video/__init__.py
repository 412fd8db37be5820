"""What came back: read a saved video's own metadata, check it against the request, show it.

* :mod:`.mp4`: a small streaming reader of MP4 boxes (standard library only): duration, size,
  frame rate, codec, audio; it seeks from box to box, so a 1 GiB file costs a few small reads;
* :mod:`.checks`: the comparison with what was asked and paid for (the ``video`` XCom entry);
* :mod:`.poster`: a poster frame (JPEG) decoded from the video, saved beside it;
* :mod:`.sheet`: a batch's poster frames laid out, labelled, as one contact sheet image.

Poster frames and contact sheets decode pictures with PyAV and Pillow, the ``review`` extra
(``pip install 'airflow-provider-kling[review]'``); they are imported only when a picture is made.
"""

from __future__ import annotations

from kling_provider.video.checks import DURATION_TOLERANCE_S, QUALITY_SHORT_SIDE, Mismatch, check_video
from kling_provider.video.mp4 import NotAnMp4Error, VideoInfo, read_video_info, read_video_info_at

__all__ = [
    "DURATION_TOLERANCE_S",
    "QUALITY_SHORT_SIDE",
    "Mismatch",
    "NotAnMp4Error",
    "VideoInfo",
    "check_video",
    "read_video_info",
    "read_video_info_at",
]
