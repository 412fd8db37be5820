"""The one thing a real triggerer does to a trigger that ``dag.test()`` does not, reproduced in-process.

Before ``run()``, Airflow's triggerer binds the trigger to its task instance
(``trigger.task_instance = ti``, ``airflow/jobs/triggerer_job_runner.py``), and
``BaseTrigger.task_instance``'s setter then sets ``trigger.task_id = ti.task_id`` (the *Airflow*
task id). A trigger keeping anything else in ``self.task_id`` loses it at that moment. This
runs in milliseconds (not marked slow); ``test_airflow_e2e.py`` shows the same on a real triggerer.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx

from kling_provider.models import TextToVideoRequest
from kling_provider.testing.pytest_plugin import KlingTestConnection
from kling_provider.triggers.kling import KlingTaskTrigger


def _create_task(connection: KlingTestConnection) -> str:
    body = TextToVideoRequest.build(prompt="a ceramic coffee mug", duration=5).to_body()
    response = httpx.post(
        connection.base_url + "/v1/videos/generations",
        json=body,
        headers={"Authorization": f"Bearer {connection.api_key}"},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["id"])


def _bind_like_the_triggerer(trigger: KlingTaskTrigger) -> None:
    """What TriggerRunner.create_triggers does with a workload's task instance (no dag_data)."""
    trigger.task_instance = SimpleNamespace(  # type: ignore[assignment]
        dag_id="kling_teaser", run_id="manual__1", task_id="teaser", map_index=-1, try_number=1
    )


async def _first_event(trigger: KlingTaskTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger yielded no event")

    return await asyncio.wait_for(first(), timeout=30)


def test_bound_trigger_still_serialises_the_evolink_task_id(kling_connection: KlingTestConnection) -> None:
    evolink_id = _create_task(kling_connection)
    trigger = KlingTaskTrigger(evolink_id, kling_connection.conn_id)
    _bind_like_the_triggerer(trigger)

    classpath, kwargs = trigger.serialize()
    assert classpath == "kling_provider.triggers.kling.KlingTaskTrigger"
    assert evolink_id in kwargs.values(), f"the EvoLink task id is not serialised: {kwargs}"
    assert "teaser" not in kwargs.values(), f"the Airflow task id was serialised: {kwargs}"
    # What the triggerer does with a trigger row: rebuild it from its kwargs, then bind it.
    rebuilt = KlingTaskTrigger(**kwargs)
    _bind_like_the_triggerer(rebuilt)
    assert rebuilt.serialize() == (classpath, kwargs)


async def test_bound_trigger_polls_the_evolink_task(kling_connection: KlingTestConnection) -> None:
    evolink_id = _create_task(kling_connection)
    trigger = KlingTaskTrigger(evolink_id, kling_connection.conn_id)
    _bind_like_the_triggerer(trigger)

    event = await _first_event(trigger)

    polled = {r.task_id for r in kling_connection.sim.requests if r.phase == "poll"}
    assert polled == {evolink_id}, f"the trigger polled {polled}, not {evolink_id}"
    assert event["status"] == "completed", event
    assert event["task_id"] == evolink_id
