"""A campaign: one teaser per product of a catalogue CSV, and a manifest of what it cost.

``read_catalogue`` turns the CSV (``params.catalogue``; a sample ships beside this file) into one
row per product; ``budget`` totals the batch's estimated cost and stops the run before the first
generation when it is above ``MAX_BATCH_CREDITS``; ``teaser`` is mapped over the rows the budget
passed (``partial().expand_kwargs()``): one Kling generation per row, saved as
``<output_dir>/<run date>/<sku>.mp4``; ``write_manifest`` writes ``manifest.json`` beside the
videos (paths, credits and USD per item, and totals), atomically.

Re-run safe: clearing a run (or triggering the DAG again on the same date) pays for nothing
already saved, since each teaser finds its video, made from the same request, at its
``output_uri`` (the operators' default ``if_exists="skip"``). docs/campaigns.md walks through it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from kling_provider.operators.budget import KlingBatchBudgetOperator
from kling_provider.operators.kling import KlingTextToVideoOperator

#: The whole batch's estimated cost may not exceed this (a 5 s 720p teaser is 27 credits).
MAX_BATCH_CREDITS = 1000
#: The mapped operator's price-setting arguments, shared with the budget so both price alike.
TEASER_SETTINGS: dict[str, Any] = {"quality": "720p"}
SAMPLE_CATALOGUE = Path(__file__).with_name("kling_campaign_products.csv")
#: A SKU becomes a file name: nothing that could leave the run's folder.
_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def read_rows(path: str | os.PathLike[str], run_folder: str) -> list[dict[str, Any]]:
    """The catalogue's products, each with where its video goes; a bad row names its line."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"sku", "product"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: the header lacks the column(s) {sorted(missing)}")
        rows: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            sku, product = (row.get("sku") or "").strip(), (row.get("product") or "").strip()
            if not _SKU.fullmatch(sku):
                raise ValueError(f"{path} line {line}: sku {sku!r} must be 1-64 letters, digits, '.', '_' or '-'")
            if sku in seen:
                raise ValueError(f"{path} line {line}: sku {sku!r} is already on line {seen[sku]}")
            if not product:
                raise ValueError(f"{path} line {line}: product is empty")
            duration = (row.get("duration") or "5").strip()
            if not duration.isdigit():
                raise ValueError(f"{path} line {line}: duration {duration!r} must be whole seconds")
            seen[sku] = line
            rows.append(
                {
                    "sku": sku,
                    "product": product,
                    "scene": (row.get("scene") or "on a marble table").strip(),
                    "duration": int(duration),
                    "output_uri": f"{run_folder}/{sku}.mp4",
                }
            )
    if not rows:
        raise ValueError(f"{path}: no product rows")
    return rows


def teaser_arguments(row: Mapping[str, Any]) -> dict[str, Any]:
    """One row -> the mapped operator's arguments (the rest are in ``partial()``)."""
    return {
        "prompt": f"{row['product']} {row['scene']}, soft studio light, shallow depth of field",
        "duration": row["duration"],
        "output_uri": row["output_uri"],
    }


def build_manifest(rows: Iterable[Mapping[str, Any]], results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per item: where the video is, what EvoLink reserved and the USD it stands for, whether the
    saved video matches the request (the operator's check) and whether this run reused it; then
    totals, with what this run itself spent."""
    items = []
    for row, result in zip(rows, results, strict=True):
        credits = result.get("credits_reserved")
        video = result.get("video") or {}
        items.append(
            {
                "sku": row["sku"],
                "product": row["product"],
                "output_uri": result.get("output_uri"),
                "evolink_task_id": result.get("id"),
                "model": result.get("model"),
                "duration": result.get("duration"),
                "quality": result.get("quality"),
                "credits": credits if credits is not None else result.get("estimated_credits"),
                "usd": result.get("estimated_usd"),
                "matches_request": video.get("matches_request"),
                "poster_uri": result.get("poster_uri"),
                "reused": bool(result.get("reused")),
            }
        )
    new = [i for i in items if not i["reused"]]
    return {
        "items": items,
        "totals": {
            "items": len(items),
            "credits": round(sum(i["credits"] or 0 for i in items), 4),
            "usd": round(sum(i["usd"] or 0 for i in items), 4),
            "mismatched": sum(i["matches_request"] is False for i in items),
            "reused": len(items) - len(new),
            "credits_this_run": round(sum(i["credits"] or 0 for i in new), 4),
            "usd_this_run": round(sum(i["usd"] or 0 for i in new), 4),
        },
    }


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


with DAG(
    dag_id="kling_campaign",
    start_date=datetime(2026, 1, 1),
    schedule="@daily",
    catchup=False,
    params={"catalogue": str(SAMPLE_CATALOGUE), "output_dir": "/tmp/kling-videos/campaign"},
    tags=["kling", "example"],
) as dag:

    @task
    def read_catalogue(**context: Any) -> list[dict[str, Any]]:
        # The run's date names its folder: clearing the same run finds its videos there again.
        run = context["dag_run"]
        day = (run.logical_date or run.run_after).date().isoformat()
        params = context["params"]
        return read_rows(params["catalogue"], f"{params['output_dir']}/{day}")

    @task
    def write_manifest(rows: list[dict[str, Any]], results: Sequence[Mapping[str, Any]], **context: Any) -> dict:
        # By index: iterating a lazy XCom sequence asks for one item past its end (an error line).
        manifest = build_manifest(rows, [results[i] for i in range(len(results))])
        manifest.update(
            dag_id=context["dag_run"].dag_id,
            run_id=context["dag_run"].run_id,
            written_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        path = Path(rows[0]["output_uri"]).parent / "manifest.json"
        write_atomically(path, json.dumps(manifest, indent=2) + "\n")
        return {"manifest": str(path), **manifest["totals"]}

    products = read_catalogue()
    # Returns the rows unchanged once their total is within budget: the teasers expand over that.
    budget = KlingBatchBudgetOperator(
        task_id="budget",
        rows=products,
        max_credits=MAX_BATCH_CREDITS,
        defaults=TEASER_SETTINGS,
        label_field="sku",
    )
    teasers = KlingTextToVideoOperator.partial(
        task_id="teaser",
        **TEASER_SETTINGS,
        aspect_ratio="16:9",
        negative_prompt="text, watermark, blur",
        max_credits=60,  # per video
        retries=2,
    ).expand_kwargs(budget.output.map(teaser_arguments))
    write_manifest(products, teasers.output)
