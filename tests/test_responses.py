"""Response models tolerate whatever shape EvoLink (or an older deployment) sends."""

from __future__ import annotations

from kling_provider.exceptions import is_retryable_task_code
from kling_provider.models.responses import ApiError, FileUploadResponse, Task, TaskStatus


def test_create_example_from_the_product_page() -> None:
    task = Task.model_validate(
        {
            "created": 1757169743,
            "id": "task-unified-1757169743-v3i2v",
            "model": "kling-v3-image-to-video",
            "object": "video.generation.task",
            "progress": 0,
            "status": "pending",
            "task_info": {"can_cancel": True, "estimated_time": 180, "video_duration": 5},
            "type": "video",
            "usage": {"billing_rule": "per_second", "credits_reserved": 27.0, "user_group": "default"},
        }
    )
    assert task.status is TaskStatus.PENDING
    assert task.estimated_time == 180
    assert task.usage is not None and task.usage.credits_reserved == 27.0
    assert not task.is_terminal


def test_minimal_and_unknown_fields() -> None:
    task = Task.model_validate(
        {"id": "t", "status": "completed", "results": ["https://x/v.mp4"], "brand_new": {"a": 1}}
    )
    assert task.video_url == "https://x/v.mp4"
    assert task.is_terminal
    assert task.model_extra == {"brand_new": {"a": 1}}
    assert Task.model_validate({"id": "t", "task_info": None, "results": None, "progress": "n/a"}).progress == 0


def test_cancelled_in_both_forms() -> None:
    assert Task.model_validate({"id": "t", "status": "cancelled"}).is_cancelled
    failed = Task.model_validate({"id": "t", "status": "failed", "error": {"code": "request_cancelled"}})
    assert failed.is_cancelled and failed.is_terminal


def test_integer_error_codes_become_strings() -> None:
    assert ApiError.model_validate({"code": 429, "message": "slow down"}).code == "429"


def test_element_id_found_anywhere_in_result_data() -> None:
    assert Task.model_validate({"id": "t", "result_data": [{"element_id": 123456}]}).element_id == "123456"
    nested = {"id": "t", "result_data": [{"element": {"info": {"element_id": "el-9"}}}]}
    assert Task.model_validate(nested).element_id == "el-9"
    assert Task.model_validate({"id": "t", "element_id": "top"}).element_id == "top"
    assert Task.model_validate({"id": "t", "result_data": [{"other": 1}]}).element_id is None


def test_file_upload_response() -> None:
    parsed = FileUploadResponse.model_validate(
        {"success": True, "code": 200, "msg": "ok", "data": {"file_url": "https://f/x.png", "extra": 1}}
    )
    assert parsed.data is not None and parsed.data.file_url == "https://f/x.png"


def test_task_error_classes() -> None:
    for code in ("content_policy_violation", "invalid_parameters", "image_processing_error", "request_cancelled"):
        assert not is_retryable_task_code(code)
    for code in ("generation_timeout", "service_error", "resource_exhausted", "unknown_error", "brand_new_code"):
        assert is_retryable_task_code(code)
