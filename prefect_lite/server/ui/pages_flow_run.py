"""The flow run page: header, state history, task timeline, logs, subflows, and why it waits.

The live part (header, timeline, logs tail) is one fragment the page re-fetches every
2 s while the run is not final: one request per poll. Task runs are drawn one bar each up
to ``AGGREGATE_ABOVE``; above that, one bar per task with counts by state, so a run with
10,000 task runs is a few hundred DOM nodes, not tens of thousands.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from prefect_lite import _time
from prefect_lite.api.flow_run_inputs import read_flow_run_input
from prefect_lite.api.flow_runs import read_flow_run, read_flow_run_states
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.schemas import FlowRun
from prefect_lite.server.ui import forms, waiting
from prefect_lite.server.ui.render import SECURITY_HEADERS, Renderer, guarded, parse_uuid, when
from prefect_lite.storage import deployments as deployment_store
from prefect_lite.storage import run_views

AGGREGATE_ABOVE = 500
MAX_GROUPS = 200
TAIL = 1000
POLL_SECONDS = 2
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
LEVELS = {"": 0, "DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
DOWNLOAD_CHUNK = 2000
TIMELINE_CACHE = 32


@dataclass
class Bar:
    label: str
    left: float  # percent of the run's span
    width: float
    type: str
    title: str
    link: str = ""
    segments: list[tuple[str, float, int]] = field(default_factory=list)  # type, %, count


def _span(rows: list[run_views.RunRow]) -> tuple[float, float]:
    starts = [r.start for r in rows if r.start is not None]
    if not starts:
        return 0.0, 1.0
    t0 = min(starts)
    t1 = max((r.start or t0) + (r.duration or 0.0) for r in rows)
    return t0, max(t1 - t0, 1e-3)


def _place(
    start: float | None, length: float | None, t0: float, span: float
) -> tuple[float, float]:
    if start is None:
        return 0.0, 0.0
    left = 100 * (start - t0) / span
    return left, max(0.3, min(100 - left, 100 * (length or 0.0) / span))


def task_bars(rows: list[run_views.RunRow]) -> list[Bar]:
    """One bar per task run, placed on the run's time span."""
    t0, span = _span(rows)
    bars = []
    for r in rows:
        left, width = _place(r.start, r.duration, t0, span)
        title = f"{r.name}: {r.state_name}, {r.duration or 0:.2f} s"
        bars.append(Bar(r.name, left, width, r.type, title))
    return bars


def group_bars(groups: list[run_views.TaskGroup]) -> tuple[list[Bar], int]:
    """One bar per task, from its first start to its last end, coloured by the share of
    its task runs in each state; and how many tasks were left out."""
    starts = [g.first_start for g in groups if g.first_start is not None]
    t0 = min(starts, default=0.0)
    span = max([(g.last_end or t0) - t0 for g in groups] + [1e-3])
    bars = []
    for g in groups[:MAX_GROUPS]:
        length = (g.last_end or 0) - g.first_start if g.first_start is not None else None
        left, width = _place(g.first_start, length, t0, span)
        ordered = sorted(g.by_type.items())
        segments = [(t, 100 * n / g.count, n) for t, n in ordered]
        label = g.task_key.rsplit(".", 1)[-1] or g.task_key
        summary = ", ".join(f"{n} {t.lower()}" for t, n in ordered)
        bars.append(
            Bar(f"{label} x{g.count}", left, width, "", f"{g.task_key}: {summary}", "", segments)
        )
    return bars, max(0, len(groups) - MAX_GROUPS)


def read_timeline(run_id: str, task_count: int) -> tuple[list[Bar], bool, int, int]:
    """``(bars, aggregated, hidden tasks, task runs)``: above ``AGGREGATE_ABOVE`` task
    runs, summed up per task in Redis; otherwise one bar each."""
    if task_count > AGGREGATE_ABOVE:
        groups = run_views.task_groups(run_id)
        bars, hidden = group_bars(groups)
        return bars, True, hidden, sum(g.count for g in groups)
    rows = run_views.task_rows(run_id)
    return task_bars(rows), False, 0, len(rows)


class _Timelines:
    """Timelines of finished runs, which no longer change: a run page viewed again (or by
    many people) skips reading thousands of task runs. Keyed by the run's state version
    and task run count, so a retried run is read afresh; a live run is never cached."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._found: OrderedDict[tuple[str, int, int], tuple[list[Bar], bool, int, int]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, run: FlowRun, task_count: int) -> tuple[list[Bar], bool, int, int]:
        key = (str(run.id), run.version, task_count)
        final = str(run.state_type) in FINAL
        with self._lock:
            found = self._found.get(key) if final else None
            if found is not None:
                self._found.move_to_end(key)
                return found
        made = read_timeline(str(run.id), task_count)
        if final:
            with self._lock:
                self._found[key] = made
                while len(self._found) > self.size:
                    self._found.popitem(last=False)
        return made

    def clear(self) -> None:
        with self._lock:
            self._found.clear()


timelines = _Timelines(TIMELINE_CACHE)


def timeline(run: FlowRun, task_count: int) -> tuple[list[Bar], bool, int, int]:
    """``(bars, aggregated, hidden groups, task runs read)`` of the run's task runs."""
    return timelines.get(run, task_count)


def _logs(run_id: str, count: int, min_level: int) -> list[dict[str, Any]]:
    if count == 0:
        return []
    rows = run_views.log_rows(run_id, -TAIL, -1)
    return [row for row in rows if int(row.get("level", 0)) >= min_level]


def _result_text(run: FlowRun) -> str:
    data = run.state.data if run.state is not None else None
    if isinstance(data, dict) and data.get("result_ref") == 1:
        where = f"{data.get('storage')} under key {data.get('key')}"
        return f"persisted in {where} ({data.get('serializer')})"
    if data is None:
        return ""
    return orjson.dumps(data, default=str).decode()[:2000]


def _duration(run: FlowRun) -> float | None:
    if run.start_time is None:
        return None
    end = run.end_time or _time.now()
    return max(0.0, (end - run.start_time).total_seconds())


def live_context(run_id: str, level: str) -> dict[str, Any]:
    run = read_flow_run(parse_uuid(run_id, "flow run"))
    extras = run_views.run_extras(run_id, run.work_pool_name)
    min_level = LEVELS.get(level, 0)
    bars, aggregated, hidden, task_count = timeline(run, extras["task_count"])
    logs = _logs(run_id, extras["log_count"], min_level)
    errors = (
        [row for row in logs if int(row.get("level", 0)) >= 40]
        if run.state_type == "FAILED"
        else []
    )
    return {
        "run": run,
        "final": str(run.state_type) in FINAL,
        "task_count": task_count,
        "bars": bars,
        "aggregated": aggregated,
        "hidden_groups": hidden,
        "logs": logs,
        "log_count": extras["log_count"],
        "level": level if level in LEVELS else "",
        "levels": list(LEVELS),
        "why": waiting.reasons(run, extras["held_by_limit"]),
        "subflows": run_views.read_rows("flow", extras["subflow_ids"]),
        "result_text": _result_text(run),
        "traceback": errors[-1]["message"] if errors else "",
        "poll_seconds": POLL_SECONDS,
        "duration": _duration(run),
        "resume_fields": resume_fields(run) if run.state_type == "PAUSED" else None,
        "form_error": "",
    }


def resume_fields(run: FlowRun) -> list[forms.Field] | None:
    """The resume form's fields when the paused run waits for input (None: a plain resume)."""
    state = run.state
    keyset = state.state_details.run_input_keyset if state is not None else None
    if not keyset or "schema" not in keyset:
        return None
    try:
        schema = read_flow_run_input(run.id, keyset["schema"]).value
    except ObjectNotFound:
        return None
    return forms.fields_for(schema) if isinstance(schema, dict) else None


def page_context(run_id: str, level: str) -> dict[str, Any]:
    live = live_context(run_id, level)
    run: FlowRun = live["run"]
    deployment = deployment_store.get_by_id(run.deployment_id) if run.deployment_id else None
    return {
        **live,
        "history": read_flow_run_states(run.id),
        "deployment": deployment,
        "parameters": orjson.dumps(
            run.parameters, option=orjson.OPT_INDENT_2, default=str
        ).decode(),
    }


def _log_lines(run_id: str) -> Iterator[bytes]:
    start = 0
    while True:
        rows = run_views.log_rows(run_id, start, start + DOWNLOAD_CHUNK - 1)
        for row in rows:
            stamp = when(_parse_stamp(row.get("timestamp")))
            level = int(row.get("level", 0))
            line = f"{stamp} {level:>2} {row.get('name', '')}: {row.get('message', '')}\n"
            yield line.encode()
        if len(rows) < DOWNLOAD_CHUNK:
            return
        start += DOWNLOAD_CHUNK


def _parse_stamp(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def router(ui: Renderer) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/flow-runs/{run_id}", response_class=HTMLResponse)
    @guarded(ui)
    def flow_run(request: Request, run_id: str) -> HTMLResponse:
        level = request.query_params.get("level", "")
        return ui.html(request, "flow_run.html", **page_context(run_id, level))

    @r.get("/flow-runs/{run_id}/live", response_class=HTMLResponse)
    @guarded(ui)
    def flow_run_live(request: Request, run_id: str) -> HTMLResponse:
        level = request.query_params.get("level", "")
        return ui.html(request, "flow_run_live.html", **live_context(run_id, level))

    @r.get("/flow-runs/{run_id}/logs.txt")
    @guarded(ui)
    def flow_run_logs(request: Request, run_id: str) -> StreamingResponse:
        run = read_flow_run(parse_uuid(run_id, "flow run"))
        headers = {
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="flow-run-{run.id}.log"',
        }
        return StreamingResponse(
            _log_lines(str(run.id)), media_type="text/plain; charset=utf-8", headers=headers
        )

    return r
