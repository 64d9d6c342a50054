"""Dashboard and Runs pages.

The Runs page keeps its filters in the URL and reads one page of 50 from the indexes
(``storage.run_views``); its table is a fragment the page re-fetches every few seconds
(one request per poll, polls no faster than every 2 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from prefect_lite import _time
from prefect_lite.api.flows import flow_id_for
from prefect_lite.exceptions import ValidationError
from prefect_lite.server.ui.render import STATE_TYPES, Renderer, guarded, parse_uuid
from prefect_lite.storage import deployments as deployment_store
from prefect_lite.storage import pools, run_views

PAGE_SIZE = 50
MAX_PAGE = 200  # 10,000 runs deep; narrow the filters to go further
POLL_SECONDS = 3
RANGES = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
FAILING = ("FAILED", "CRASHED")
FAILING_SAMPLE = 100  # newest failed (and crashed) runs the dashboard groups by deployment
LATE_AFTER = 60  # seconds past its start time before a scheduled run counts as late


@dataclass
class RunsQuery:
    """The Runs page's filters as given in the URL (kept as text to link back)."""

    params: dict[str, Any]
    filter: run_views.RunFilter
    page: int


def _time_arg(text: str, what: str) -> float:
    try:
        return _time.ensure_utc(datetime.fromisoformat(text)).timestamp()
    except ValueError:
        raise ValidationError(f"{what} must be a date and time like 2026-01-31T12:00") from None


def parse_query(request: Request) -> RunsQuery:
    """The filters in the query string; a bad value is a ``ValidationError``."""
    q = request.query_params
    states = [s.upper() for s in q.getlist("state") if s]
    unknown = [s for s in states if s not in STATE_TYPES]
    if unknown:
        raise ValidationError(f"unknown state {unknown[0]!r}")
    f = run_views.RunFilter(states=states[:9])
    params: dict[str, Any] = {"state": states}
    if q.get("flow"):
        params["flow"] = q["flow"][:200]
        f.flow_id = str(flow_id_for(params["flow"]))
    if q.get("deployment"):
        f.deployment_id = str(parse_uuid(q["deployment"], "deployment"))
        params["deployment"] = f.deployment_id
    for name in ("pool", "tag"):
        if q.get(name):
            params[name] = q[name][:200]
    f.pool, f.tag = params.get("pool"), params.get("tag")
    span = q.get("range", "")
    if span:
        if span not in RANGES:
            raise ValidationError(f"range must be one of {', '.join(RANGES)}")
        params["range"] = span
        f.after = _time.timestamp() - RANGES[span]
    for name in ("after", "before"):
        if q.get(name):
            params[name] = q[name][:40]
            setattr(f, name, _time_arg(params[name], name))
    page = q.get("page", "1")
    if not page.isdigit() or not 1 <= int(page) <= MAX_PAGE:
        raise ValidationError(f"page must be a number from 1 to {MAX_PAGE}")
    return RunsQuery(params, f, int(page))


_names: dict[str, str] = {}  # deployment id -> full name; an id never changes its name
MAX_NAMES = 10_000


def _deployment_names(rows: list[run_views.RunRow]) -> dict[str, str]:
    """Names of the rows' deployments, from memory once seen (saves two round trips)."""
    ids = {r.deployment_id for r in rows if r.deployment_id}
    missing = sorted(i for i in ids if i not in _names)
    if missing:
        if len(_names) > MAX_NAMES:
            _names.clear()
        found = deployment_store.get_many_by_id(missing)
        _names.update({i: d.full_name for i, d in found.items()})
    return {i: _names[i] for i in ids if i in _names}


def runs_context(request: Request) -> dict[str, Any]:
    rq = parse_query(request)
    found = run_views.page_flow_runs(rq.filter, (rq.page - 1) * PAGE_SIZE, PAGE_SIZE)
    return {
        "rows": found.rows,
        "has_more": found.has_more,
        "incomplete": found.incomplete,
        "params": rq.params,
        "page": rq.page,
        "deployments": _deployment_names(found.rows),
        "ranges": list(RANGES),
        "poll_seconds": POLL_SECONDS,
    }


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, _time.now().tzinfo).strftime("%Y-%m-%dT%H:%M:%S")


def _hours(start: float, per_slot: list[dict[str, int]]) -> list[dict[str, Any]]:
    """Hour by hour: runs per state, each hour's link and bar heights."""
    peak = max((sum(c.values()) for c in per_slot), default=0) or 1
    return [
        {
            "label": datetime.fromtimestamp(start + i * 3600, _time.now().tzinfo).strftime("%H:00"),
            "total": sum(c.values()),
            "segments": [(s, 100 * n / peak, n) for s, n in c.items() if n],
            "after": _iso(start + i * 3600),
            "before": _iso(start + (i + 1) * 3600),
        }
        for i, c in enumerate(per_slot)
    ]


def dashboard_context() -> dict[str, Any]:
    now = _time.timestamp()
    day_ago = now - RANGES["24h"]
    first_hour = (now // 3600 - 23) * 3600
    seen = run_views.overview(
        STATE_TYPES, day_ago, (first_hour, 3600, 24), now - LATE_AFTER, FAILING, FAILING_SAMPLE
    )
    failing: dict[str, int] = {}
    for row in run_views.read_rows("flow", seen.failing_ids):
        if row.deployment_id:
            failing[row.deployment_id] = failing.get(row.deployment_id, 0) + 1
    names = {i: d.full_name for i, d in deployment_store.get_many_by_id(list(failing)).items()}
    workers = sorted(pools.list_workers(None), key=lambda w: (w.status != "ONLINE", w.name))
    return {
        "hours": _hours(first_hour, seen.per_slot),
        "counts": seen.counts,
        "total": sum(seen.counts.values()),
        "late": seen.late,
        "failing": sorted(
            ((names.get(i, i), i, n) for i, n in failing.items()), key=lambda t: -t[2]
        )[:10],
        "workers": workers[:50],
        "worker_total": len(workers),
        "online": sum(1 for w in workers if w.status == "ONLINE"),
        "late_before": _iso(now - LATE_AFTER),
    }


def router(ui: Renderer) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/", response_class=HTMLResponse)
    @guarded(ui)
    def dashboard(request: Request) -> HTMLResponse:
        return ui.html(request, "dashboard.html", **dashboard_context())

    @r.get("/runs", response_class=HTMLResponse)
    @guarded(ui)
    def runs(request: Request) -> HTMLResponse:
        return ui.html(request, "runs.html", **runs_context(request))

    @r.get("/runs/table", response_class=HTMLResponse)
    @guarded(ui)
    def runs_table(request: Request) -> HTMLResponse:
        return ui.html(request, "runs_table.html", **runs_context(request))

    return r
