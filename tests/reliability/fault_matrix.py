"""The fault matrix: every fault the simulator injects x every phase x both operator modes.

A row is one kind of trouble; for each phase (upload, submit, poll, download) it states what
must happen: :class:`Saved` (the video is at ``output_uri`` and exactly the stated number of
tasks was created), :class:`Fails` (the Airflow task fails with this error type and a message
naming what to do, having created at most one task), or :class:`NotApplicable` (with the reason:
listed in the table, never silently dropped). Cells are generated from :data:`ROWS`; the runner
(:func:`run_cell`) drives one cell through ``dag.test()`` against the simulator over loopback
HTTP and checks the outcome; :func:`render` prints the whole matrix with its figures.

Counting, per cell: ``posts`` = create calls the simulator received (refused 429/503 included);
``tasks`` = tasks it created. After the run the simulated clock is moved on until every task
created has ended, then each *completed* task whose video is not at ``output_uri`` is classified:

* ``orphan``: the provider never learned its id (the answer to the create call was lost). No
  API can find it (no idempotency key, no task listing): the failure message gives the time
  and request to look for in the EvoLink console. Expected only in the lost-answer cells.
* ``unobtainable``: the vendor's link refuses the video (expired). Expected only there.
* ``kept``: the provider knows it and kept its id in the task state store, so clearing the
  Airflow task re-attaches and saves it without paying again.
* ``lost``: anything else. Must be 0.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import httpx
import pytest

from kling_provider.exceptions import NON_RETRYABLE_TASK_CODES, RETRYABLE_TASK_CODES
from kling_provider.testing import Fault
from kling_provider.testing.faults import FaultKind

if TYPE_CHECKING:
    from kling_provider.testing import EvoLinkSimulator

Phase = Literal["upload", "submit", "poll", "download"]
Mode = Literal["deferred", "worker"]
PHASES: tuple[Phase, ...] = ("upload", "submit", "poll", "download")
MODES: tuple[Mode, ...] = ("deferred", "worker")
Leftover = Literal["orphan", "unobtainable", "kept", "lost"]

#: Mirrors tests/dags/kling_reliability_dags.py (imported there by the DAG, here by value).
MAX_ATTEMPTS = 3
RETRIES = 2
#: The connection's timeout (seconds): every read waits this long at most.
CLIENT_TIMEOUT = 2.0
#: A "slow" answer comes this late: past the client's timeout.
SLOW_DELAY = CLIENT_TIMEOUT + 1.0

AIRFLOW_FAIL = "AirflowFailException"
#: Words the message of an ambiguous create call must carry (what to look for, what to do).
UNKNOWN_WORDS = ("may or may not have created a task", "not retried", "EvoLink console", "clear this task")


def _failed_polls_tolerated(mode: Mode) -> int:
    """Consecutive failed polls (each already retried) that end a wait, per mode (their defaults)."""
    from kling_provider.hooks.kling import KlingHook
    from kling_provider.triggers.kling import KlingTaskTrigger

    owner: Callable[..., Any] = KlingTaskTrigger.__init__ if mode == "deferred" else KlingHook.wait_for_task
    return int(inspect.signature(owner).parameters["max_failed_polls"].default)


# -- outcomes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    """The video is saved at output_uri; ``tasks`` created (2 only when EvoLink failed the first
    with a transient code: that one produced nothing); the last try is ``tries``."""

    tasks: int = 1
    tries: int = 1

    def describe(self) -> str:
        extra = [f"{self.tasks} tasks"] if self.tasks != 1 else []
        extra += [f"try {self.tries}"] if self.tries != 1 else []
        return "saved" + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Fails:
    """The Airflow task fails with ``error`` (class name) whose message has every one of ``words``."""

    error: str
    words: tuple[str, ...]
    tasks: int = 0
    tries: int = 1
    #: What becomes of a task that was created and completes (see the module docstring).
    leftover: Leftover | None = None

    def describe(self) -> str:
        return f"fails: {self.error}" + (f" ({self.leftover})" if self.leftover else "")


@dataclass(frozen=True)
class NotApplicable:
    reason: str

    def describe(self) -> str:
        return "n/a"


Outcome = Saved | Fails | NotApplicable


@dataclass(frozen=True)
class Row:
    """One fault, how to set it up for a phase and mode, and the outcome per phase."""

    name: str
    kind: FaultKind
    setup: Callable[[EvoLinkSimulator, Phase, Mode], None]
    outcomes: Mapping[Phase, Outcome]


@dataclass(frozen=True)
class Cell:
    row: Row
    phase: Phase
    mode: Mode

    @property
    def expected(self) -> Outcome:
        return self.row.outcomes[self.phase]

    @property
    def id(self) -> str:
        return f"{self.row.name}|{self.phase}|{self.mode}"


# -- rows -------------------------------------------------------------------------------------------


def _request_fault(**fault: Any) -> Callable[[EvoLinkSimulator, Phase, Mode], None]:
    def setup(sim: EvoLinkSimulator, phase: Phase, mode: Mode) -> None:
        sim.faults.add(Fault(phase=phase, **fault))

    return setup


def _outage(status: int) -> Callable[[EvoLinkSimulator, Phase, Mode], None]:
    """Exactly enough consecutive failures to spend the first try's whole budget, then none."""

    def setup(sim: EvoLinkSimulator, phase: Phase, mode: Mode) -> None:
        times = MAX_ATTEMPTS * (_failed_polls_tolerated(mode) if phase == "poll" else 1)
        sim.faults.add(Fault(phase=phase, kind="status", status=status, times=times))

    return setup


def _task_fault(**fault: Any) -> Callable[[EvoLinkSimulator, Phase, Mode], None]:
    def setup(sim: EvoLinkSimulator, phase: Phase, mode: Mode) -> None:
        sim.faults.add(Fault(**fault))

    return setup


def _expire_links(sim: EvoLinkSimulator, phase: Phase, mode: Mode) -> None:
    sim.link_lifetime = -60.0  # signed result links expire a minute before the task completes


SAVED = Saved()
#: Faults on idempotent calls are retried inside the hook: nothing shows but a little delay.
RECOVERS: dict[Phase, Outcome] = {"upload": SAVED, "poll": SAVED, "download": SAVED}
AMBIGUOUS = Fails(AIRFLOW_FAIL, UNKNOWN_WORDS, tasks=0)
AMBIGUOUS_CREATED = Fails(AIRFLOW_FAIL, UNKNOWN_WORDS, tasks=1, leftover="orphan")
ONLY_SUBMIT = NotApplicable("the lost answer of a create call: only create calls create anything")
ONLY_DOWNLOAD = NotApplicable("result links are only used to download the video")
TASK_OUTCOME = NotApplicable("a task outcome: it plays out on EvoLink and is seen by polling")


def _rows() -> Iterator[Row]:
    yield Row(
        "429 + Retry-After",
        "status",
        _request_fault(kind="status", status=429, retry_after=1, times=2),
        {**RECOVERS, "submit": SAVED},
    )
    yield Row(
        "429, no Retry-After",
        "status",
        _request_fault(kind="status", status=429, times=2),
        {**RECOVERS, "submit": SAVED},
    )
    yield Row(
        "429, hint in body (integer shape)",
        "status",
        _request_fault(kind="status", status=429, retry_hint=1, error_shape="integer", times=1),
        {**RECOVERS, "submit": SAVED},
    )
    for status in (500, 502):
        # The vendor's own error body on a create call: "the request failed", not retried in the
        # hook; each Airflow try submits once, so the third try (retries=2) gets through.
        yield Row(
            f"{status} burst x2",
            "status",
            _request_fault(kind="status", status=status, times=2),
            {**RECOVERS, "submit": Saved(tries=3)},
        )
    yield Row(
        "503 burst x2", "status", _request_fault(kind="status", status=503, times=2), {**RECOVERS, "submit": SAVED}
    )
    yield Row(
        "503 outage > hook retries",
        "status",
        _outage(503),
        {phase: Saved(tries=2) for phase in PHASES},
    )
    yield Row(
        "504 from the gateway",
        "status",
        _request_fault(kind="status", status=504, times=1),
        {**RECOVERS, "submit": AMBIGUOUS},
    )
    yield Row(
        "slow answer past the timeout",
        "slow",
        _request_fault(kind="slow", delay=SLOW_DELAY, times=1),
        # Processed, then late: the task exists, but the client never heard of it.
        {**RECOVERS, "submit": AMBIGUOUS_CREATED},
    )
    yield Row(
        "dropped connection",
        "drop",
        _request_fault(kind="drop", times=1),
        {**RECOVERS, "submit": AMBIGUOUS},
    )
    for body in ("html", "empty", "invalid_json"):
        yield Row(
            f"malformed body: {body}",
            "malformed",
            _request_fault(kind="malformed", malformed=body, times=1),
            {**RECOVERS, "submit": AMBIGUOUS},
        )
    for lost_as in ("drop", "timeout"):
        yield Row(
            f"lost create answer ({lost_as})",
            "lost_submit_response",
            _task_fault(kind="lost_submit_response", lost_as=lost_as, delay=SLOW_DELAY),
            {"upload": ONLY_SUBMIT, "submit": AMBIGUOUS_CREATED, "poll": ONLY_SUBMIT, "download": ONLY_SUBMIT},
        )
    for code in sorted(NON_RETRYABLE_TASK_CODES - {"request_cancelled"}):
        yield Row(
            f"task fails: {code}",
            "fail_task",
            _task_fault(kind="fail_task", error_code=code),
            {
                "upload": TASK_OUTCOME,
                "submit": TASK_OUTCOME,
                "poll": Fails(AIRFLOW_FAIL, (code, "Change the request"), tasks=1),
                "download": TASK_OUTCOME,
            },
        )
    for code in sorted(RETRYABLE_TASK_CODES):
        yield Row(
            f"task fails: {code}",
            "fail_task",
            _task_fault(kind="fail_task", error_code=code, at_progress=50),
            {"upload": TASK_OUTCOME, "submit": TASK_OUTCOME, "poll": Saved(tasks=2, tries=2), "download": TASK_OUTCOME},
        )
    for cancel_as, words in (("cancelled", ("was cancelled",)), ("failed", ("request_cancelled",))):
        yield Row(
            f"task cancelled (as {cancel_as})",
            "cancel_task",
            _task_fault(kind="cancel_task", cancel_as=cancel_as, at_progress=30),
            {
                "upload": TASK_OUTCOME,
                "submit": TASK_OUTCOME,
                "poll": Fails(AIRFLOW_FAIL, (*words, "Change the request"), tasks=1),
                "download": TASK_OUTCOME,
            },
        )
    # The video itself is wrong: only its download can tell (the task completes as asked for).
    only_the_video = NotApplicable("the delivered video itself: seen only when it is downloaded")
    yield Row(
        "video truncated (with a matching length)",
        "bad_video",
        _task_fault(kind="bad_video", bad_video="truncated"),
        {
            **dict.fromkeys(PHASES, only_the_video),
            "download": Fails(
                "KlingServerError", ("truncated MP4", "gave up after"), tasks=1, tries=RETRIES + 1, leftover="kept"
            ),
        },
    )
    yield Row(
        "video differs from the request (a warning)",
        "bad_video",
        _task_fault(kind="bad_video", bad_video="wrong_duration"),
        {**dict.fromkeys(PHASES, only_the_video), "download": SAVED},
    )
    expired = Fails(AIRFLOW_FAIL, ("no longer serves the video", "24 hours"), tasks=1, leftover="unobtainable")
    yield Row(
        "expired result link",
        "status",
        _expire_links,
        {"upload": ONLY_DOWNLOAD, "submit": ONLY_DOWNLOAD, "poll": ONLY_DOWNLOAD, "download": expired},
    )
    yield Row(
        "result link gone (410)",
        "status",
        _request_fault(kind="status", status=410, rate=1.0),
        {"upload": ONLY_DOWNLOAD, "submit": ONLY_DOWNLOAD, "poll": ONLY_DOWNLOAD, "download": expired},
    )


ROWS: tuple[Row, ...] = tuple(_rows())
CELLS: tuple[Cell, ...] = tuple(Cell(row, phase, mode) for row in ROWS for phase in PHASES for mode in MODES)
APPLICABLE: tuple[Cell, ...] = tuple(c for c in CELLS if not isinstance(c.expected, NotApplicable))


def uncovered_fault_kinds() -> set[str]:
    """Fault kinds the simulator knows that no row exercises (must be empty)."""
    return set(get_args(FaultKind)) - {row.kind for row in ROWS}


# -- results ----------------------------------------------------------------------------------------


@dataclass
class CellResult:
    cell: Cell
    passed: bool = False
    problems: list[str] = field(default_factory=list)
    ti_state: str = ""
    tries: int = 0
    posts: int = 0
    tasks: int = 0
    saved: bool = False
    leftovers: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    message: str = ""
    seconds: float = 0.0


#: Filled by the tests as cells run; read by the terminal summary (tests/reliability/conftest.py).
RESULTS: dict[str, CellResult] = {}


@dataclass
class Attempt:
    """One call of execute / execute_complete: how it ended."""

    method: str
    error: BaseException | None


@dataclass
class MatrixEnv:
    """What a cell needs: the simulator, the run helper, a folder, and the recorded attempts."""

    sim: EvoLinkSimulator
    run_dag: Callable[[str, dict[str, str]], Any]
    workdir: Path
    image: Path
    attempts: list[Attempt]
    api_key: str


@contextmanager
def matrix_environment(workdir: Path) -> Iterator[MatrixEnv]:
    """A loopback simulator with the canary key, ``kling_default`` pointing at it, and the operators'
    execute / execute_complete wrapped to record how each call ended (for the typed error)."""
    from kling_provider.operators.base import BaseKlingOperator
    from kling_provider.testing.media import make_png

    from .support import CANARY_KEY, kling_default, run_dag_test, simulator_server

    image = workdir / "frame.png"
    image.write_bytes(make_png(1280, 720))
    attempts: list[Attempt] = []
    execute, execute_complete = BaseKlingOperator.execute, BaseKlingOperator.execute_complete

    def recorded(method: Any, name: str) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            from airflow_compat import TaskDeferred

            try:
                value = method(self, *args, **kwargs)
            except TaskDeferred:
                attempts.append(Attempt(name, None))
                raise
            except BaseException as err:
                attempts.append(Attempt(name, err))
                raise
            attempts.append(Attempt(name, None))
            return value

        return wrapper

    with simulator_server() as server, kling_default(server.base_url, timeout=CLIENT_TIMEOUT):
        register_base_url(server.sim, server.base_url)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(BaseKlingOperator, "execute", recorded(execute, "execute"))
            patch.setattr(BaseKlingOperator, "execute_complete", recorded(execute_complete, "execute_complete"))
            yield MatrixEnv(server.sim, run_dag_test, workdir, image, attempts, CANARY_KEY)


def run_cell(cell: Cell, env: MatrixEnv, *, record: bool = True) -> CellResult:
    """Set the fault up, run the DAG once with dag.test(), and check the outcome (``record``: add it
    to the printed matrix)."""
    sim = env.sim
    result = CellResult(cell)
    started = time.monotonic()
    folder = env.workdir / cell.id.replace("|", "_").replace(" ", "_").replace(":", "").replace(",", "")
    folder.mkdir(parents=True)
    output = folder / "video.mp4"
    first_request, first_task = len(sim.requests), len(sim.tasks)
    saved_link_lifetime = sim.link_lifetime
    env.attempts.clear()
    cell.row.setup(sim, cell.phase, cell.mode)
    try:
        ti = env.run_dag(
            f"reliability_matrix_{cell.mode}",
            {"image": str(env.image), "output_uri": str(output), "marker": cell.id},
        )
    finally:
        faults = list(sim.faults)
        sim.faults.clear()
        sim.link_lifetime = saved_link_lifetime
        sim.fast_forward()  # every task created has ended now: count what became of each
    result.ti_state, result.tries = str(ti.state), int(ti.try_number)
    requests = sim.requests[first_request:]
    created = sim.tasks[first_task:]
    result.posts = sum(1 for r in requests if r.method == "POST" and r.phase == "submit")
    result.tasks = len(created)
    failures = [a.error for a in env.attempts if a.error is not None]
    if failures:
        last = failures[-1]
        result.error, result.message = type(last).__name__, str(last)
    polled = {r.task_id for r in requests if r.phase == "poll"}
    # What the provider's own last download of each task was answered (a refused link is gone).
    last_download = {r.task_id: r.status for r in requests if r.phase == "download"}
    stored = _stored_task_ids(ti)
    completed = [t for t in created if sim.view(t.id).status == "completed"]
    result.saved = _saved_video_matches(output, sim, completed)
    for task in completed:
        if result.saved and task is completed[-1]:
            continue
        kind: Leftover
        if task.id not in polled:
            kind = "orphan"
        elif last_download.get(task.id) in (403, 404, 410):
            kind = "unobtainable"
        elif task.id in stored:
            kind = "kept"
        else:
            kind = "lost"
        result.leftovers[kind] = result.leftovers.get(kind, 0) + 1
    result.problems = _check(cell.expected, result, output, env.api_key)
    # A cell whose fault never fired proves nothing.
    unfired = [f"{f.kind}/{f.phase}" for f in faults if f.hits == 0]
    if unfired:
        result.problems.append(f"the fault never fired: {unfired}")
    if not faults and not any(r.phase == "download" and r.status == 403 for r in requests):
        result.problems.append("no download was refused: the link did not expire")
    result.passed = not result.problems
    result.seconds = time.monotonic() - started
    if record:
        RESULTS[cell.id] = result
    return result


def sim_result_url(sim: EvoLinkSimulator, task_id: str) -> str:
    """The result link a poll of ``task_id`` shows now (the simulator's own answer)."""
    base = _base_url(sim)
    response = httpx.get(f"{base}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {_key(sim)}"}, timeout=10)
    results = response.json().get("results") or []
    return str(results[0]) if results else f"{base}/files/results/{task_id}.mp4"


_BASE_URLS: dict[int, str] = {}


def register_base_url(sim: EvoLinkSimulator, base_url: str) -> None:
    _BASE_URLS[id(sim)] = base_url


def _base_url(sim: EvoLinkSimulator) -> str:
    return _BASE_URLS[id(sim)]


def _key(sim: EvoLinkSimulator) -> str:
    return sorted(sim.api_keys)[0]


def _saved_video_matches(output: Path, sim: EvoLinkSimulator, completed: list[Any]) -> bool:
    """The file at output is complete and byte-identical to what EvoLink serves for the task."""
    if not output.is_file() or not completed:
        return False
    served = httpx.get(sim_result_url(sim, completed[-1].id), timeout=10)
    return served.status_code == 200 and output.read_bytes() == served.content


def _stored_task_ids(ti: Any) -> set[str]:
    """EvoLink task ids the operator's state store still holds for this task instance: Airflow
    3.3's task_state_store table, or the Variable older Airflows keep it in."""
    from airflow.utils.session import create_session
    from airflow_compat import HAS_TASK_STATE_STORE
    from sqlalchemy import text

    with create_session() as session:
        if HAS_TASK_STATE_STORE:
            rows = session.execute(
                text("SELECT value FROM task_state_store WHERE dag_id = :d AND run_id = :r AND task_id = :t"),
                {"d": ti.dag_id, "r": ti.run_id, "t": ti.task_id},
            ).fetchall()
            values = [value for (value,) in rows]
        else:
            from airflow.models.variable import Variable

            from kling_provider.operators.state import _VariableTaskStateStore

            key = _VariableTaskStateStore({"ti": ti, "run_id": ti.run_id}).key
            values = [v.get_val() for v in session.query(Variable).filter(Variable.key == key)]
    found = set()
    for value in values:
        try:
            parsed = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            continue
        if isinstance(parsed, dict) and parsed.get("task_id"):
            found.add(str(parsed["task_id"]))
    return found


def _check(expected: Outcome, got: CellResult, output: Path, api_key: str) -> list[str]:
    problems: list[str] = []
    leftovers = {k: v for k, v in got.leftovers.items() if v}
    if api_key in got.message:
        problems.append("the API key is in the error message")
    strays = [p.name for p in output.parent.iterdir() if p.name not in (output.name, output.name + ".kling.json")]
    if strays:
        problems.append(f"files left beside the output: {strays}")
    if isinstance(expected, Saved):
        if "success" not in got.ti_state:
            problems.append(f"task ended {got.ti_state}: {got.error}: {got.message[:300]}")
        if not got.saved:
            problems.append("no complete video at output_uri")
        if got.tasks != expected.tasks:
            problems.append(f"{got.tasks} tasks created, expected {expected.tasks}")
        if got.tries != expected.tries:
            problems.append(f"ended on try {got.tries}, expected {expected.tries}")
        if leftovers:
            problems.append(f"completed tasks not saved: {leftovers}")
    elif isinstance(expected, Fails):
        if "failed" not in got.ti_state:
            problems.append(f"task ended {got.ti_state}, expected a failure")
        if got.error != expected.error:
            problems.append(f"raised {got.error}, expected {expected.error}: {got.message[:300]}")
        missing = [w for w in expected.words if w not in got.message]
        if missing:
            problems.append(f"message lacks {missing}: {got.message[:300]}")
        if got.tasks != expected.tasks:
            problems.append(f"{got.tasks} tasks created, expected {expected.tasks}")
        if got.tries != expected.tries:
            problems.append(f"ended on try {got.tries}, expected {expected.tries}")
        if output.exists():
            problems.append("a file exists at output_uri although the task failed")
        allowed = {expected.leftover: expected.tasks} if expected.leftover else {}
        if leftovers != allowed:
            problems.append(f"completed-but-unsaved tasks {leftovers}, expected {allowed}")
    return problems


# -- the table --------------------------------------------------------------------------------------


def render(results: Mapping[str, CellResult]) -> str:
    """The matrix as a text table plus the figures; cells not run show as '.'."""
    columns = [(phase, mode) for phase in PHASES for mode in MODES]
    width = max(len(r.name) for r in ROWS) + 2
    col = 11
    head = "fault".ljust(width) + "".join(f"{p[:6]}/{m[:3]}".ljust(col) for p, m in columns)
    lines = [head, "-" * len(head)]
    for row in ROWS:
        line = row.name.ljust(width)
        for phase, mode in columns:
            cell = Cell(row, phase, mode)
            if isinstance(cell.expected, NotApplicable):
                mark = "n/a"
            elif cell.id not in results:
                mark = "."
            else:
                res = results[cell.id]
                mark = _mark(cell.expected, res) if res.passed else "BROKEN"
            line += mark.ljust(col)
        lines.append(line)
    ran = [r for r in results.values()]
    passed = [r for r in ran if r.passed]
    saved = [r for r in ran if r.saved]
    leftovers: dict[str, int] = {}
    for r in ran:
        for k, v in r.leftovers.items():
            leftovers[k] = leftovers.get(k, 0) + v
    na = [c for c in CELLS if isinstance(c.expected, NotApplicable)]
    posts = [r.posts for r in saved]
    tasks = [r.tasks for r in saved]
    lines += [
        "",
        "saved = video at output_uri, one task; t2/t3 = on Airflow try 2/3; 2T = two tasks created (EvoLink "
        "failed the first); fail:X = the task failed with X (AFE AirflowFailException), as expected",
        f"cells: {len(CELLS)} in the matrix, {len(na)} n/a, {len(APPLICABLE)} applicable; "
        f"tried {len(ran)}, passed {len(passed)}, broken {len(ran) - len(passed)}",
        f"videos saved: {len(saved)}; per saved video: create calls (POST) "
        f"mean {sum(posts) / max(1, len(posts)):.2f} max {max(posts, default=0)}, tasks created "
        f"mean {sum(tasks) / max(1, len(tasks)):.2f} max {max(tasks, default=0)} "
        "(2 only where EvoLink itself failed the first task with a transient code)",
        f"failed cells: create calls max {max((r.posts for r in ran if not r.saved), default=0)}, "
        f"tasks created max {max((r.tasks for r in ran if not r.saved), default=0)}",
        f"videos lost: {leftovers.get('lost', 0)}; completed but unsaved by design: "
        f"orphaned by a lost create answer {leftovers.get('orphan', 0)}, link expired at EvoLink "
        f"{leftovers.get('unobtainable', 0)}, kept for a clear {leftovers.get('kept', 0)}",
        f"time: {sum(r.seconds for r in ran):.0f} s",
        "",
        f"n/a cells ({len(na)}, both modes):",
        *_not_applicable_lines(),
    ]
    broken = [r for r in ran if not r.passed]
    if broken:
        lines += ["", "BROKEN cells:", *(f"  {r.cell.id}: {'; '.join(r.problems)}" for r in broken)]
    return "\n".join(lines)


def _not_applicable_lines() -> list[str]:
    lines = []
    for row in ROWS:
        reasons: dict[str, list[str]] = {}
        for phase in PHASES:
            outcome = row.outcomes[phase]
            if isinstance(outcome, NotApplicable):
                reasons.setdefault(outcome.reason, []).append(phase)
        lines += [f"  {row.name} x {'/'.join(phases)}: {reason}" for reason, phases in reasons.items()]
    return lines


_ABBREVIATIONS = {"AirflowFailException": "AFE"}


def _mark(expected: Outcome, res: CellResult) -> str:
    if isinstance(expected, Saved):
        notes = ",".join(([f"{res.tasks}T"] if res.tasks > 1 else []) + ([f"t{res.tries}"] if res.tries > 1 else []))
        return "saved" + (f"/{notes}" if notes else "")
    error = res.error or "?"
    return "fail:" + _ABBREVIATIONS.get(error, error.replace("Kling", "").replace("Error", ""))
