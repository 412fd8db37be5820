"""The simulator's task API on a manual clock: lifecycle, shapes, auth, billing, limits, log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kling_provider.testing import DEFAULT_API_KEY, EvoLinkSimulator, Fault, SimClock, price_credits

BASE = "http://evolink-sim.localhost"
AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
T2V = {"model": "kling-v3-text-to-video", "prompt": "A cat running on grass"}


def make_client(sim: EvoLinkSimulator, key: str | None = DEFAULT_API_KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.Client(transport=sim.sync_transport(), base_url=BASE, headers=headers)


@pytest.fixture
def sim(kling_simulator: EvoLinkSimulator) -> EvoLinkSimulator:
    return kling_simulator


@pytest.fixture
def client(sim: EvoLinkSimulator) -> Iterator[httpx.Client]:
    with make_client(sim) as c:
        yield c


def submit(client: httpx.Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/v1/videos/generations", json=body or T2V)
    assert response.status_code == 200, response.text
    return response.json()


def poll(client: httpx.Client, task_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()


# -- creation --------------------------------------------------------------------------------


def test_create_response_matches_the_vendor_example(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    task = submit(client)
    assert re.fullmatch(r"task-unified-\d+-[a-z0-9]{8}", task["id"])
    assert task["created"] == int(sim.clock.now())
    assert task["id"].split("-")[2] == str(task["created"])
    assert task["model"] == "kling-v3-text-to-video"
    assert task["object"] == "video.generation.task"
    assert (task["status"], task["progress"], task["type"]) == ("pending", 0, "video")
    assert task["task_info"] == {"can_cancel": True, "estimated_time": 3, "video_duration": 5}
    assert task["usage"] == {"billing_rule": "per_second", "credits_reserved": 27.0, "user_group": "default"}
    assert "results" not in task and "error" not in task


@pytest.mark.parametrize(
    ("duration", "quality", "sound", "credits"),
    [
        (5, "720p", "off", 27.0),
        (5, "720p", "on", 40.5),
        (10, "1080p", "off", 71.982),
        (10, "1080p", "on", 108.0),
        (3, "720p", "off", 16.2),
        (15, "4k", "off", 202.5),  # simulator-only: 2.5x the 720p rate
    ],
)
def test_credits_follow_the_pricing_table(
    client: httpx.Client, duration: int, quality: str, sound: str, credits: float
) -> None:
    task = submit(client, {**T2V, "duration": duration, "quality": quality, "sound": sound})
    assert task["usage"]["credits_reserved"] == pytest.approx(credits)
    assert price_credits("kling-v3-text-to-video", duration, quality, sound == "on") == pytest.approx(credits)


def test_minimum_billed_duration_is_three_seconds() -> None:
    assert price_credits("kling-v3-text-to-video", 1) == price_credits("kling-v3-text-to-video", 3) == 16.2


# -- lifecycle --------------------------------------------------------------------------------


def test_lifecycle_on_a_manual_clock(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    sim.generation_seconds = 100
    sim.pending_seconds = 10
    task_id = submit(client)["id"]
    assert poll(client, task_id)["status"] == "pending"  # time stands still
    sim.clock.advance(9.9)
    assert (poll(client, task_id)["status"], poll(client, task_id)["progress"]) == ("pending", 0)
    seen = []
    for _ in range(9):
        sim.clock.advance(10)
        body = poll(client, task_id)
        assert body["status"] == "processing"
        assert body["task_info"]["can_cancel"] is True
        assert "results" not in body
        seen.append(body["progress"])
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert all(isinstance(p, int) and 1 <= p <= 99 for p in seen)
    sim.clock.advance(0.2)
    done = poll(client, task_id)
    assert (done["status"], done["progress"]) == ("completed", 100)
    assert done["task_info"]["can_cancel"] is False
    assert done["results"] == [done["result_data"][0]["video_url"]]
    assert done["results"][0].startswith(f"{BASE}/files/results/{task_id}.mp4?expires=")
    assert poll(client, task_id)["results"] == done["results"]  # same link on every look


def test_estimated_time_total_or_remaining(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    sim.generation_seconds = 60
    task_id = submit(client)["id"]
    sim.clock.advance(20)
    assert poll(client, task_id)["task_info"]["estimated_time"] == 60
    sim.estimated_time_mode = "remaining"
    assert poll(client, task_id)["task_info"]["estimated_time"] == 40
    sim.fast_forward()
    assert poll(client, task_id)["task_info"]["estimated_time"] == 0


def test_realistic_timing_grows_with_duration_and_quality(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    sim.generation_seconds = None
    short = submit(client, {**T2V, "duration": 3})["task_info"]["estimated_time"]
    long = submit(client, {**T2V, "duration": 15, "quality": "1080p"})["task_info"]["estimated_time"]
    assert 60 <= short < long <= 180


def test_jitter_changes_the_real_duration_not_the_estimate(client: httpx.Client) -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0), generation_seconds=100, duration_jitter=0.3, seed=7)
    with make_client(sim) as c:
        tasks = [sim.task(submit(c)["id"]) for _ in range(20)]
    assert {t.estimated_seconds for t in tasks} == {100}
    actual = [t.actual_seconds for t in tasks]
    assert all(70 <= a <= 130 for a in actual) and len(set(actual)) == 20
    again = EvoLinkSimulator(clock=SimClock(speed=0), generation_seconds=100, duration_jitter=0.3, seed=7)
    with make_client(again) as c:
        assert [again.task(submit(c)["id"]).actual_seconds for _ in range(20)] == actual  # seeded


def test_running_clock_moves_tasks_without_advance() -> None:
    clock = SimClock(speed=1000)
    sim = EvoLinkSimulator(clock=clock, generation_seconds=1)
    with make_client(sim) as c:
        task_id = submit(c)["id"]
        deadline = clock.now() + 60
        while poll(c, task_id)["status"] != "completed":
            assert clock.now() < deadline


def test_clock_rejects_going_back() -> None:
    clock = SimClock(speed=0, start=1000)
    assert clock.now() == 1000 and clock.advance(5) == 1005 and clock.advance_to(1001) == 1005
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_custom_element_completes_with_an_element_id(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    body = {
        "model": "kling-custom-element",
        "model_params": {
            "element_name": "Hero",
            "element_description": "A young man in a white T-shirt",
            "reference_type": "image_refer",
            "element_image_list": {
                "frontal_image": "https://example.com/front.jpg",
                "refer_images": [{"image_url": "https://example.com/side.jpg"}],
            },
        },
    }
    created = submit(client, body)
    assert created["usage"]["billing_rule"] == "per_call"
    assert "video_duration" not in created["task_info"]
    sim.fast_forward()
    done = poll(client, created["id"])
    assert done["status"] == "completed"
    assert re.fullmatch(r"el-[a-z0-9]{16}", done["result_data"][0]["element_id"])


# -- failures and cancellation ----------------------------------------------------------------


def test_fail_task_fault_at_completion(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    sim.faults.add(Fault(kind="fail_task", error_code="content_policy_violation"))
    doomed, fine = submit(client)["id"], submit(client)["id"]
    sim.clock.advance(2)
    assert poll(client, doomed)["status"] == "processing"
    sim.fast_forward()
    failed = poll(client, doomed)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "content_policy_violation"
    assert failed["error"]["type"] == "task_error" and failed["error"]["message"]
    assert "results" not in failed
    assert poll(client, fine)["status"] == "completed"  # times=1 by default


def test_fail_task_fault_at_progress(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    sim.generation_seconds, sim.pending_seconds = 100, 0
    sim.faults.add(Fault(kind="fail_task", error_code="service_error", at_progress=40, times=2))
    first, second, third = (submit(client)["id"] for _ in range(3))
    sim.clock.advance(39.5)
    assert poll(client, first)["status"] == "processing"
    sim.clock.advance(1)
    body = poll(client, first)
    assert (body["status"], body["progress"], body["error"]["code"]) == ("failed", 40, "service_error")
    assert poll(client, second)["status"] == "failed"
    assert poll(client, third)["status"] == "processing"


def test_cancel_shows_as_cancelled_or_failed(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    a, b = submit(client)["id"], submit(client)["id"]
    sim.clock.advance(1)
    assert sim.cancel(a) is True
    assert sim.cancel(b, as_failed=True) is True
    assert poll(client, a)["status"] == "cancelled" and "error" not in poll(client, a)
    body = poll(client, b)
    assert (body["status"], body["error"]["code"]) == ("failed", "request_cancelled")
    sim.fast_forward()
    assert poll(client, a)["status"] == "cancelled"
    assert sim.cancel(a) is False


def test_cancel_task_fault_and_cancel_style(client: httpx.Client) -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0), cancel_style="failed")
    with make_client(sim) as c:
        sim.faults.add(Fault(kind="cancel_task", at_progress=50))
        task_id = submit(c)["id"]
        assert poll(c, task_id)["status"] == "pending"  # the create answer and early polls look normal
        sim.fast_forward(task_id)
        body = poll(c, task_id)
        assert (body["status"], body["error"]["code"], body["progress"]) == ("failed", "request_cancelled", 50)


def test_fail_now_via_api(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    task_id = submit(client)["id"]
    assert sim.fail(task_id, "generation_timeout") is True
    assert poll(client, task_id)["error"]["code"] == "generation_timeout"
    assert sim.fail(task_id) is False


# -- lookups, auth, limits --------------------------------------------------------------------


def test_unknown_and_malformed_task_ids(client: httpx.Client) -> None:
    missing = client.get("/v1/tasks/task-unified-1-abcdefgh")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "task_not_found"
    bad = client.get("/v1/tasks/12345")
    assert bad.status_code == 400
    assert bad.json()["error"] == {
        "code": "invalid_task_id",
        "message": "Invalid task ID format, must start with 'task-unified-'",
        "type": "invalid_request_error",
        "param": "task_id",
    }


def test_tasks_belong_to_the_key_that_created_them() -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0), api_keys=["sk-a", "sk-b"])
    with make_client(sim, "sk-a") as a, make_client(sim, "sk-b") as b:
        task_id = submit(a)["id"]
        denied = b.get(f"/v1/tasks/{task_id}")
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"


def test_task_ttl(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    sim.task_ttl = 3600
    task_id = submit(client)["id"]
    sim.clock.advance(3601)
    assert client.get(f"/v1/tasks/{task_id}").status_code == 404


@pytest.mark.parametrize("key", [None, "sk-wrong", ""])
def test_wrong_or_missing_key_is_401(sim: EvoLinkSimulator, key: str | None) -> None:
    with make_client(sim, key) as c:
        response = c.post("/v1/videos/generations", json=T2V)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.json()["error"]["type"] == "authentication_error"
        assert c.get("/v1/tasks/task-unified-1-abcdefgh").status_code == 401
    assert sim.tasks == []


def test_accept_any_key() -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0), accept_any_key=True)
    with make_client(sim, "anything-goes") as c:
        assert c.post("/v1/videos/generations", json=T2V).status_code == 200
    with make_client(sim, None) as c:
        assert c.post("/v1/videos/generations", json=T2V).status_code == 401


def test_denied_model_is_403(client: httpx.Client, sim: EvoLinkSimulator) -> None:
    sim.denied_models = frozenset({"kling-v3-text-to-video"})
    response = client.post("/v1/videos/generations", json=T2V)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_access_denied"


def test_credits_balance_and_402(client: httpx.Client) -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0), credits=60)
    with make_client(sim) as c:
        submit(c)
        submit(c)
        assert sim.credits == pytest.approx(6.0) and sim.credits_spent == pytest.approx(54.0)
        refused = c.post("/v1/videos/generations", json=T2V)
        assert refused.status_code == 402
        assert refused.json()["error"]["code"] == "insufficient_quota"
        assert len(sim.tasks) == 2


def test_rate_limit_sliding_window_with_retry_after() -> None:
    clock = SimClock(speed=0)
    sim = EvoLinkSimulator(clock=clock, rate_limit_rpm=3)
    with make_client(sim) as c:
        task_id = submit(c)["id"]
        clock.advance(20)
        poll(c, task_id)
        poll(c, task_id)
        limited = c.get(f"/v1/tasks/{task_id}")
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert limited.headers["Retry-After"] == "40"
        clock.advance(40)  # the first request leaves the window
        poll(c, task_id)
        assert c.get(f"/v1/tasks/{task_id}").status_code == 429
    with make_client(sim, "sk-other") as other:  # per key: an unknown key is 401, not 429
        assert other.get(f"/v1/tasks/{task_id}").status_code == 401
    sim.rate_limit_retry_after = False
    with make_client(sim) as c:
        assert "Retry-After" not in c.get(f"/v1/tasks/{task_id}").headers


def test_rate_limiter_is_cheap_at_thousands_of_requests() -> None:
    from kling_provider.testing.state import SlidingWindowLimiter

    limiter = SlidingWindowLimiter(1000)
    admitted = sum(limiter.acquire("k", now=i * 0.01) is None for i in range(20000))  # 200 s of traffic
    assert 3000 <= admitted <= 4100


# -- error shapes -----------------------------------------------------------------------------


def test_integer_error_shape(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    sim.error_shape = "integer"
    bad = client.post("/v1/videos/generations", json={**T2V, "duration": 99})
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == 400 and error["param"] == "duration" and error["type"] == "invalid_request_error"
    assert "fallback_suggestion" in error
    missing = client.get("/v1/tasks/task-unified-1-abcdefgh").json()["error"]
    assert missing["code"] == 404
    sim.rate_limit_rpm = 1
    client.get("/v1/tasks/task-unified-1-abcdefgh")
    limited = client.get("/v1/tasks/task-unified-1-abcdefgh")
    assert limited.status_code == 429
    assert limited.json()["error"]["fallback_suggestion"] == f"retry after {limited.headers['Retry-After']} seconds"


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    assert client.get("/v1/nothing").status_code == 404
    wrong = client.get("/v1/videos/generations")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"


# -- request log ------------------------------------------------------------------------------


def test_request_log_records_requests_but_never_the_key(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    task_id = submit(client)["id"]
    poll(client, task_id)
    with make_client(sim, "sk-intruder-secret") as intruder:
        intruder.get(f"/v1/tasks/{task_id}")
    records = sim.requests
    assert [(r.method, r.phase, r.status) for r in records] == [
        ("POST", "submit", 200),
        ("GET", "poll", 200),
        ("GET", "poll", 401),
    ]
    assert records[0].json == T2V and records[0].task_id == task_id and records[1].task_id == task_id
    assert (records[0].key_present, records[0].authorized) == (True, True)
    assert (records[2].key_present, records[2].authorized) == (True, False)
    assert sim.count(method="POST", phase="submit") == 1
    assert sim.count(phase="poll", status=200, task_id=task_id) == 1
    dump = repr(records) + repr(sim) + repr([vars(r) for r in records])
    assert DEFAULT_API_KEY not in dump and "sk-intruder-secret" not in dump


async def test_async_and_sync_transports_share_state(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    task_id = submit(client)["id"]
    async with httpx.AsyncClient(transport=sim.async_transport(), base_url=BASE, headers=AUTH) as aclient:
        response = await aclient.get(f"/v1/tasks/{task_id}")
        assert response.status_code == 200 and response.json()["id"] == task_id
        created = await aclient.post("/v1/videos/generations", json=T2V)
    assert poll(client, created.json()["id"])["status"] == "pending"
    assert sim.count(phase="submit") == 2
