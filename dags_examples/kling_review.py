"""Review and iterate: a campaign brief -> N variants -> a person picks one in Airflow's UI -> published.

A run generates one video per angle in ``ANGLES`` (mapped, each with a poster frame), lays the
poster frames out on a contact sheet, then waits in the ``review`` task (Airflow 3.1+
human-in-the-loop) until someone answers in Required Actions: the form shows the sheet and each
variant's poster frame, links to the saved copy and to EvoLink's result, and its credits.
Poster frames need the ``review`` extra (``pip install 'airflow-provider-kling[review]'``).

* **Variant N**: ``publish`` copies that variant atomically to ``publish_dir/<campaign>.mp4``
  and records an event on the ``kling_review_published`` asset (a DAG with
  ``schedule=[Asset("kling_review_published")]`` runs on every published video).
* **Reject all** with a note: ``next_round`` starts a new run of this DAG with the note added to
  ``notes``, which ``plan`` folds into every prompt. ``max_rounds`` runs at most; the last
  round's rejection starts nothing. (Why rounds are runs: kling_provider/operators/rounds.py.)

Guide: docs/review.md. Against the simulator: answer with the UI or the REST API
(``PATCH /api/v2/dags/kling_review/dagRuns/<run>/taskInstances/review/-1/hitlDetails``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Asset, task

from kling_provider.operators.kling import KlingTextToVideoOperator
from kling_provider.operators.review import KlingReviewOperator

#: One variant per angle: the same brief, shot differently. The review form offers these.
ANGLES = [
    "slow orbit around it on a marble table",
    "macro close-up gliding over the glaze",
    "steam rising from it on a sunny breakfast table",
]
PUBLISHED = Asset(name="kling_review_published")

with DAG(
    dag_id="kling_review",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={
        "campaign": "mug-launch",
        "product": "a ceramic coffee mug",
        "style": "warm morning light, shallow depth of field",
        "output_dir": "/tmp/kling-videos/review",
        "publish_dir": "/tmp/kling-videos/published",
        "round": 1,
        "max_rounds": 3,
        "notes": [],
    },
    tags=["kling", "example", "review"],
) as dag:

    @task
    def plan(**context: Any) -> list[dict[str, str]]:
        """One request per angle; the reviewers' notes from earlier rounds end every prompt."""
        from kling_provider.operators.rounds import current_round, fold_notes

        params = context["params"]
        now = current_round(params)
        folder = _folder(context)
        return [
            {
                "prompt": fold_notes(f"{params['product']}, {angle}, {params['style']}", now.notes),
                "output_uri": f"{folder}/variant-{number}.mp4",
            }
            for number, angle in enumerate(ANGLES, 1)
        ]

    generate = KlingTextToVideoOperator.partial(
        task_id="generate",
        duration=5,
        quality="720p",
        aspect_ratio="16:9",
        negative_prompt="text, watermark, blur",
        max_credits=50,
        poster=True,  # a JPEG of the middle frame beside each video: the form shows it
    ).expand_kwargs(plan())

    @task
    def sheet(results: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        """All variants' poster frames on one labelled image, at the top of the form."""
        from kling_provider.video.sheet import contact_sheet

        captions = [f"Variant {number}" for number in range(1, len(ANGLES) + 1)]
        return contact_sheet(results, f"{_folder(context)}/sheet.jpg", captions=captions, tile_width=320)

    review = KlingReviewOperator(
        task_id="review",
        variants=generate.output,
        count=len(ANGLES),
        captions=ANGLES,
        contact_sheet=sheet(generate.output),
        subject="{{ params.campaign }}: pick a variant (round {{ params.round }} of {{ params.max_rounds }})",
        body=(
            "**Brief**: {{ params.product }}, {{ params.style }}"
            "{% if params.notes %}\n\n**Notes from earlier rounds**: {{ params.notes | join('; ') }}{% endif %}"
        ),
        publish_task_id="publish",
        reject_task_id="plan_next_round",
    )

    @task(outlets=[PUBLISHED])
    def publish(decision: dict[str, Any], **context: Any) -> dict[str, Any]:
        from kling_provider.operators.publish import publish_chosen

        params = context["params"]
        target = f"{params['publish_dir']}/{params['campaign']}.mp4"
        return publish_chosen(context, decision, target, outlet=PUBLISHED)

    @task
    def plan_next_round(decision: dict[str, Any], **context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from kling_provider.operators.rounds import current_round, next_round_conf

        conf = next_round_conf(context["params"], decision.get("note"))
        if conf is None:
            raise AirflowSkipException(
                f"All variants rejected in {current_round(context['params']).describe()}, the last: "
                "nothing published, no new round"
            )
        return conf

    TriggerDagRunOperator(
        task_id="next_round",
        trigger_dag_id="kling_review",
        conf=plan_next_round(review.output),
    )
    publish(review.output)


def _folder(context: Any) -> str:
    """Where this run's variants go: one folder per campaign and run (run ids hold ':' and '+')."""
    params, run_id = context["params"], context["run_id"]
    return f"{params['output_dir']}/{params['campaign']}/" + "".join(
        c if c.isalnum() or c in "-_." else "-" for c in run_id
    )
