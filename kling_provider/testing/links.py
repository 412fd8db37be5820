"""Result links: the pre-signed, expiring URL of a completed task's video, and serving it.

EvoLink hands out a storage link valid for 24 hours (``results[0]``), fetched without the API key.
The simulator signs ``/files/results/{task_id}.mp4?expires=<epoch>&signature=<hmac>`` with a
secret of its own and refuses a bad or late one as a storage CDN does (:func:`.errors.cdn_error`).
``sim.links`` is a :class:`ResultLinks`; a subclass put there changes the policy for a whole run
(the soak's links that expire at random and are renewed by the next query, tests/soak/simproc.py).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.responses import Response

from kling_provider.testing.errors import cdn_error
from kling_provider.testing.exchange import Exchange
from kling_provider.testing.state import SimTask

if TYPE_CHECKING:
    from kling_provider.testing.app import EvoLinkSimulator

__all__ = ["ResultLinks", "download"]


class ResultLinks:
    """Signs result links and judges the ones that come back.

    :param lifetime: seconds a link stays valid after the task completes (vendor: 24 h).
    """

    def __init__(self, lifetime: float = 86400.0) -> None:
        self.lifetime = lifetime
        self._secret = secrets.token_bytes(16)

    def signature(self, task_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{task_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def expiry(self, task: SimTask) -> int:
        """When the link a query of ``task`` hands out now stops working (epoch seconds)."""
        return math.ceil(task.ends_at + self.lifetime)

    def url(self, task: SimTask, base_url: str) -> str:
        """The link a query of the completed video task ``task`` hands out now."""
        expires = self.expiry(task)
        return f"{base_url}/files/results/{task.id}.mp4?expires={expires}&signature={self.signature(task.id, expires)}"

    def refusal(self, task: SimTask, ex: Exchange, now: float) -> Response | None:
        """The CDN's answer to a link of ``task`` it will not serve (bad signature, late), else None."""
        query = parse_qs(ex.request.url.query)
        try:
            expires = int(query["expires"][0])
            signature = query["signature"][0]
        except (KeyError, IndexError, ValueError):
            return cdn_error(403, "AccessDenied", "Missing or malformed signature")
        if not hmac.compare_digest(signature, self.signature(task.id, expires)):
            return cdn_error(403, "SignatureDoesNotMatch", "The request signature does not match")
        if now > expires:
            return cdn_error(403, "AccessDenied", "Request has expired")
        return None


async def download(sim: EvoLinkSimulator, ex: Exchange) -> Response:
    """``GET /files/results/{task_id}.mp4``: the video, if the link is good."""
    task = sim.state.task(ex.params["task_id"])
    now = sim.clock.now()
    if task is None or task.spec.kind != "video" or task.view(now).status != "completed":
        return cdn_error(404, "NoSuchKey", "The specified key does not exist.")
    refused = sim.links.refusal(task, ex, now)
    if refused is not None:
        return refused
    video = await anyio.to_thread.run_sync(sim.video, task.id)
    return Response(video, media_type="video/mp4", headers={"Cache-Control": "private, max-age=86400"})
