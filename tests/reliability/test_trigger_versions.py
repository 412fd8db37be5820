"""Workers and triggerers can run different provider versions for a while (a rolling upgrade, or
a triggerer that has not been restarted yet): the trigger must still load.

Seen on a real cluster (test_process_faults): an operator that serialised a kwarg the running
triggerer's KlingTaskTrigger did not know failed to inflate ("unexpected keyword argument"), and
every task deferring meanwhile failed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from kling_provider.hooks.kling import KlingHook
from kling_provider.hooks.retry import RetryPolicy
from kling_provider.models import TextToVideoRequest
from kling_provider.triggers.kling import KlingTaskTrigger

pytestmark = pytest.mark.kling_simulator(generation_seconds=1)
FAST = {"min_interval": 0.05, "margin": 0.05, "max_tail_interval": 0.2, "settle": 0}


def test_a_trigger_from_a_newer_release_still_loads_and_waits(
    kling_connection: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with KlingHook() as hook:
        task_id = hook.submit(TextToVideoRequest.build(prompt="a lighthouse", duration=3)).id
    _, kwargs = KlingTaskTrigger(task_id, poll_policy=FAST).serialize()
    newer = {**kwargs, "a_setting_from_a_newer_release": {"x": 1}}

    trigger = KlingTaskTrigger(**newer)  # what the triggerer does with the stored kwargs

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    with caplog.at_level(logging.WARNING):
        events = asyncio.run(collect())
    assert [e["status"] for e in events] == ["completed"]
    logged = caplog.text + "".join(capfd.readouterr())
    assert "Ignoring settings" in logged and "a_setting_from_a_newer_release" in logged, "named in the log"
    assert "a_setting_from_a_newer_release" not in trigger.serialize()[1]


def test_default_settings_serialise_no_keys_an_older_triggerer_would_refuse() -> None:
    """retry_policy is new: left out when not set, so a DAG with default settings still loads in a
    triggerer running the previous release."""
    _, kwargs = KlingTaskTrigger("task-unified-1-abc", poll_policy=FAST).serialize()
    assert "retry_policy" not in kwargs
    _, kwargs = KlingTaskTrigger("task-unified-1-abc", retry_policy={"max_attempts": 2}).serialize()
    assert kwargs["retry_policy"] == {"max_attempts": 2}
    assert KlingTaskTrigger(**kwargs)._retry_policy() == RetryPolicy(max_attempts=2)
