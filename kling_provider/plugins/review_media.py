"""The pictures and videos of a review form, served by Airflow's own API server.

Airflow's UI cannot show ``data:`` images or ``file://`` links in a HITL body (see
:mod:`kling_provider.operators.review`), so this plugin mounts a small FastAPI app at
``/kling`` on the API server. ``GET /kling/review-media/{dag_id}/{run_id}/{task_id}/{token}``
answers with the file the review task recorded under ``token`` in its ``kling_review_media``
XCom, nothing else:

* the caller must be signed in (the UI's session cookie, or a bearer token) and allowed to read
  that DAG's human-in-the-loop details: whoever may see the form may see its pictures;
* only files a review task listed are served, so no path from the request reaches the disk;
* the file's first bytes must match the type recorded (JPEG, PNG or MP4), and videos are served
  with byte ranges so the browser's player can seek.

The app is built the first time the API server asks for the plugin's ``fastapi_apps``: the
scheduler, triggerer and workers load plugins too, and never import FastAPI for it.

(No ``from __future__ import annotations`` here: FastAPI reads the route's annotations as
objects, and the route's types are imported inside :func:`create_app`.)
"""

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin

#: Leading bytes of each media type the app serves.
_SIGNATURES = {
    "image/jpeg": lambda head: head[:3] == b"\xff\xd8\xff",
    "image/png": lambda head: head[:8] == b"\x89PNG\r\n\x1a\n",
    "video/mp4": lambda head: head[4:8] == b"ftyp",
}


def recorded_media(media: Any, token: str) -> tuple[Path, str] | None:
    """The local file and media type a review task recorded under ``token``, if it is one this
    app may serve (a local file of a known type, whose first bytes say it is that type)."""
    from kling_provider.operators.review import media_path

    entry = media.get(token) if isinstance(media, dict) else None
    if not isinstance(entry, dict):
        return None
    uri, media_type = entry.get("uri"), entry.get("type")
    check = _SIGNATURES.get(media_type) if isinstance(media_type, str) else None
    path = media_path(uri) if isinstance(uri, str) else None
    if check is None or path is None:
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    return (Path(path), str(media_type)) if check(head) else None


def create_app() -> Any:
    """The FastAPI app (imports the API server's own auth and database helpers)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from airflow.models.xcom import XComModel
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse
    from sqlalchemy import select

    from kling_provider.operators.review import MEDIA_ROUTE, MEDIA_XCOM_KEY

    app = FastAPI(title="Kling review media", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(
        MEDIA_ROUTE + "/{dag_id}/{run_id}/{task_id}/{token}",
        dependencies=[Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.HITL_DETAIL))],
    )
    def review_media(
        dag_id: str, run_id: str, task_id: str, token: str, session: SessionDep, map_index: int = -1
    ) -> FileResponse:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == MEDIA_XCOM_KEY,
            )
        ).first()
        found = recorded_media(XComModel.deserialize_value(row), token) if row is not None else None
        if found is None:
            raise HTTPException(404, f"no review media {token!r} for {dag_id}/{run_id}/{task_id}")
        path, media_type = found
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})

    return app


class KlingReviewMediaPlugin(AirflowPlugin):
    """Serves review forms' media at ``/kling/review-media/...`` on the API server."""

    name = "kling_review_media"

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The app, on Airflow 3.1+; nothing on older Airflow (no review forms there) or when it
        cannot be built (logged: the API server must start anyway)."""
        try:
            from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

            if not hasattr(DagAccessEntity, "HITL_DETAIL"):  # Airflow < 3.1
                return []
            from kling_provider.operators.review import MEDIA_ROUTE_PREFIX

            return [{"app": create_app(), "url_prefix": MEDIA_ROUTE_PREFIX, "name": "Kling review media"}]
        except Exception:
            logging.getLogger(__name__).exception("Kling review media: not served (the review forms show no pictures)")
            return []
