"""The async client: hooks on one event loop share one ``AsyncClient``, closed by the last one out.

A triggerer runs many Kling triggers on one loop; each trigger's hook takes a reference to the
loop's client on its first request and gives it back in ``aclose()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kling_provider.exceptions import KlingSubmissionUnknownError
from kling_provider.hooks import clients
from kling_provider.hooks.kling import KlingHook
from kling_provider.models import TaskStatus
from kling_provider.testing import Fault

from .support import SimEnv, open_env, text_request


def _shared_transport(env: SimEnv) -> dict[str, Any]:
    """In-process, hooks share a client only if they share the transport (it is part of the key)."""
    return {"async_transport": env.sim.async_transport()} if env.mode == "inprocess" else {}


async def test_two_hooks_on_one_loop_share_one_client(env: SimEnv) -> None:
    before = clients.open_count()
    wiring = _shared_transport(env)
    first, second = env.hook(**wiring), env.hook(**wiring)

    task = await first.asubmit(text_request())
    assert clients.open_count() == before + 1
    polled = await second.aget_task(task.id)
    assert polled.id == task.id
    assert clients.open_count() == before + 1
    client = await first._async_client()
    assert client is await second._async_client()

    await first.aclose()
    assert clients.open_count() == before + 1
    assert not client.is_closed
    env.finish(task.id)
    assert (await second.aget_task(task.id)).status is TaskStatus.COMPLETED  # still usable

    await second.aclose()
    assert clients.open_count() == before
    assert client.is_closed
    assert env.requests_by_phase() == {"submit": 1, "poll": 2}


async def test_many_concurrent_hooks_one_client_one_post_each(env: SimEnv) -> None:
    """Twenty generations at once on one loop: one client, exactly one POST and one task each."""
    before = clients.open_count()
    wiring = _shared_transport(env)
    hooks = [env.hook(**wiring) for _ in range(20)]
    peak = 0

    async def generate(hook: KlingHook, n: int) -> str:
        nonlocal peak
        task = await hook.asubmit(text_request(duration=3 + n % 10))
        peak = max(peak, clients.open_count())
        env.finish(task.id)
        done = await hook.aget_task(task.id)
        assert done.status is TaskStatus.COMPLETED
        return done.id

    ids = await asyncio.gather(*(generate(hook, n) for n, hook in enumerate(hooks)))
    assert peak == before + 1
    assert len(set(ids)) == 20
    assert env.sim.count(phase="submit", method="POST") == 20
    assert len(env.sim.tasks) == 20
    assert env.sim.count(phase="poll") == 20
    await asyncio.gather(*(hook.aclose() for hook in hooks))
    assert clients.open_count() == before


async def test_different_transports_get_different_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    with open_env("inprocess", monkeypatch) as env:
        before = clients.open_count()
        first, second = env.hook(), env.hook()  # a transport each
        task = await first.asubmit(text_request())
        await second.aget_task(task.id)
        assert clients.open_count() == before + 2
        assert await first._async_client() is not await second._async_client()
        await first.aclose()
        await second.aclose()
        assert clients.open_count() == before


def test_hooks_on_two_loops_do_not_share(env: SimEnv) -> None:
    """A client belongs to the loop it was made on; another loop gets its own."""
    before = clients.open_count()
    wiring = _shared_transport(env)
    first, second = env.hook(**wiring), env.hook(**wiring)
    loop_a, loop_b = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        task = loop_a.run_until_complete(first.asubmit(text_request()))
        loop_b.run_until_complete(second.aget_task(task.id))
        assert clients.open_count() == before + 2
        loop_a.run_until_complete(first.aclose())
        loop_b.run_until_complete(second.aclose())
        assert clients.open_count() == before
    finally:
        loop_a.close()
        loop_b.close()
    assert env.requests_by_phase() == {"submit": 1, "poll": 1}


async def test_async_context_manager_and_double_close(env: SimEnv) -> None:
    before = clients.open_count()
    async with env.hook() as hook:
        task = await hook.asubmit(text_request())
        assert clients.open_count() == before + 1
    assert clients.open_count() == before
    await hook.aclose()  # a second close is harmless
    async with env.hook():
        pass  # never made a request: nothing was opened, nothing to close
    assert clients.open_count() == before
    assert env.sim.count(phase="submit") == 1 and task.id == env.sim.tasks[0].id


async def test_client_is_released_after_an_ambiguous_submit(env: SimEnv) -> None:
    before = clients.open_count()
    env.sim.faults.add(Fault(kind="lost_submit_response"))
    async with env.hook() as hook:
        with pytest.raises(KlingSubmissionUnknownError):
            await hook.asubmit(text_request())
    assert clients.open_count() == before
    assert env.sim.count(method="POST") == 1 and len(env.sim.tasks) == 1


async def test_async_follow_to_completion_on_one_loop(env: SimEnv) -> None:
    """asubmit, then aget_task as a trigger would, the simulated clock moving between polls."""
    async with env.hook() as hook:
        task = await hook.asubmit(text_request())
        statuses = []
        for _ in range(10):
            polled = await hook.aget_task(task.id)
            statuses.append(polled.status)
            if polled.is_terminal:
                break
            env.sim.clock.advance(1.0)
    assert statuses == [TaskStatus.PENDING, TaskStatus.PROCESSING, TaskStatus.PROCESSING, TaskStatus.COMPLETED]
    assert env.requests_by_phase() == {"submit": 1, "poll": 4}
