"""Putting an answer on the wire: whole, late, or cut off mid-body.

A fault (:mod:`.faults`) decides how a request's answer is spoiled; this module carries that out,
over a real socket (uvicorn) or in-process (the simulator's httpx transports), where what cannot
happen on a socket (a client giving up on a late answer, a connection closing mid-body) is raised
as the exception httpx would have raised.
"""

from __future__ import annotations

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from kling_provider.testing.errors import api_error, fault_answer
from kling_provider.testing.faults import ErrorShape, Fault, SimulatedConnectionDrop, SimulatedReadTimeout
from kling_provider.testing.state import RequestRecord
from kling_provider.testing.transports import in_process_call

__all__ = ["deliver_fault", "send_answer"]


async def send_answer(response: Response, record: RequestRecord, scope: Scope, receive: Receive, send: Send) -> None:
    """Send ``response`` whole (headers only for a HEAD), noting its status in ``record``."""
    head = scope["method"] == "HEAD"

    async def recording_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = int(message["status"])
        elif head and message["type"] == "http.response.body":
            message = {**message, "body": b""}  # headers (Content-Length included) only
        await send(message)

    await response(scope, receive, recording_send)


async def _send_truncated(response: Response | None, send: Send) -> None:
    """Promise a body with Content-Length, send part of it, and end the exchange unfinished.

    The server then closes the connection, and the client sees a broken answer.
    """
    body = bytes(response.body) if response is not None else b'{"id": "task-unified-'
    status = response.status_code if response is not None else 200
    declared = max(len(body), 64)
    headers = [(k, v) for k, v in (response.raw_headers if response else []) if k.lower() != b"content-length"]
    if response is None:
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(declared).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})


async def _client_left_within(delay: float, receive: Receive) -> bool:
    """Wait ``delay`` seconds without blocking; True if the client hung up meanwhile."""
    with anyio.move_on_after(delay):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return True
            if not message.get("more_body"):
                await anyio.sleep(delay)  # nothing more to watch; the deadline ends this
    return False


async def deliver_fault(
    fault: Fault,
    record: RequestRecord,
    response: Response | None,
    shape: ErrorShape,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Answer as ``fault`` says: an error body, late, or cut off. ``response`` is the real answer
    (None when the fault hit before the request was acted on); ``shape`` the simulator's error shape.

    In-process (the simulator's own transports), a late answer the client would not wait for and a
    dropped connection raise the exception httpx would have raised over a socket.
    """
    how = fault.delivery
    call = in_process_call()
    if how in ("status", "malformed"):
        await send_answer(fault_answer(fault, record.phase, shape), record, scope, receive, send)
    elif how == "slow":
        late = response if response is not None else api_error(shape, 504)
        if call is not None:
            if call.read_timeout is not None and fault.delay >= call.read_timeout:
                raise SimulatedReadTimeout(f"simulated: the answer would come {fault.delay:g} s late")
            await anyio.sleep(fault.delay)
        elif await _client_left_within(fault.delay, receive):
            return
        await send_answer(late, record, scope, receive, send)
    else:
        if call is not None:
            raise SimulatedConnectionDrop("simulated: the server closed the connection mid-answer")
        await _send_truncated(response, send)
