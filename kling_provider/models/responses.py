"""What EvoLink answers, parsed leniently.

Every model ignores unknown fields and treats every field as optional: the vendor adds fields,
older deployments send integer error codes, and a parse failure on a status poll must never
lose track of a task that is being paid for.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TaskStatus(str, Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _code_to_str(value: Any) -> str | None:
    """Error codes arrive as strings (current docs) or as integers equal to the HTTP status."""
    if value is None:
        return None
    return str(value)


class ApiError(_Lenient):
    code: str | None = None
    message: str | None = None
    type: str | None = None
    param: str | None = None
    fallback_suggestion: str | None = None

    _coerce_code = field_validator("code", mode="before")(_code_to_str)

    @field_validator("message", "type", "param", "fallback_suggestion", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> str | None:
        return None if value is None else str(value)


class ErrorResponse(_Lenient):
    error: ApiError | None = None


class TaskInfo(_Lenient):
    can_cancel: bool | None = None
    estimated_time: float | None = None
    video_duration: float | None = None


class Usage(_Lenient):
    billing_rule: str | None = None
    credits_reserved: float | None = None
    user_group: str | None = None


class Task(_Lenient):
    """A generation task as returned by create and by ``GET /v1/tasks/{id}``."""

    id: str
    model: str | None = None
    object: str | None = None
    created: int | None = None
    status: TaskStatus = TaskStatus.PENDING
    progress: float = 0
    results: list[str] = Field(default_factory=list)
    result_data: Any = None
    error: ApiError | None = None
    task_info: TaskInfo = Field(default_factory=TaskInfo)
    usage: Usage | None = None
    type: str | None = None

    @field_validator("results", mode="before")
    @classmethod
    def _results_list(cls, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value if v]

    @field_validator("task_info", mode="before")
    @classmethod
    def _task_info(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("progress", mode="before")
    @classmethod
    def _progress(cls, value: Any) -> float:
        try:
            return max(0.0, min(100.0, float(value)))
        except (TypeError, ValueError):
            return 0.0

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def is_cancelled(self) -> bool:
        return self.status is TaskStatus.CANCELLED or (
            self.status is TaskStatus.FAILED and self.error_code == "request_cancelled"
        )

    @property
    def error_code(self) -> str | None:
        """EvoLink's error code for a failed (or cancelled-as-failed) task, else None."""
        return self.error.code if self.error is not None else None

    @property
    def failure_reason(self) -> str:
        """What EvoLink said went wrong, for messages: its error message, or that it gave none."""
        return (self.error.message if self.error is not None else None) or "no reason given"

    @property
    def video_url(self) -> str | None:
        return self.results[0] if self.results else None

    @property
    def estimated_time(self) -> float | None:
        return self.task_info.estimated_time

    @property
    def element_id(self) -> str | None:
        """The id a ``kling-custom-element`` task created.

        Its place in ``result_data`` is undocumented, so look for an ``element_id`` key at any
        depth, then in the top-level extra fields.
        """
        found = _find_key(self.result_data, "element_id")
        if found is None:
            found = _find_key(self.model_extra or {}, "element_id")
        return None if found is None else str(found)


def _find_key(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if value.get(key) not in (None, ""):
            return value[key]
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        found = _find_key(child, key)
        if found is not None:
            return found
    return None


class FileData(_Lenient):
    file_id: str | None = None
    file_name: str | None = None
    file_url: str
    download_url: str | None = None
    mime_type: str | None = None
    file_size: int | None = None
    expires_at: str | None = None


class FileUploadResponse(_Lenient):
    success: bool = True
    code: int | str | None = None
    msg: str | None = None
    data: FileData | None = None
