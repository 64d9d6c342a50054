"""Deployments: the list, a deployment's page (schedules previewed, recent runs, duration
trend), pause/resume, and the Run form generated from its parameter schema.

The Run form's values are checked by ``create_flow_run_from_deployment``, the handler a
client's request reaches, so the UI accepts exactly what the API accepts; its message is
shown next to the parameter it names. A run created goes straight to its page.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from prefect_lite import _time
from prefect_lite.api.deployment_runs import create_flow_run_from_deployment
from prefect_lite.api.deployments import pause_deployment, read_deployment, resume_deployment
from prefect_lite.exceptions import ValidationError
from prefect_lite.schedules import next_times, zone
from prefect_lite.schemas import Deployment, Schedule
from prefect_lite.server.ui import forms
from prefect_lite.server.ui.render import Renderer, guarded, parse_uuid
from prefect_lite.server.ui.security import Form, FormDep, require
from prefect_lite.storage import deployments as store
from prefect_lite.storage import run_views

PAGE_SIZE = 50
RECENT = 20
PREVIEW = 10
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def _every(seconds: float) -> str:
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"every {unit}" if n == 1 else f"every {n} {unit}s"
    return f"every {seconds:g} seconds"


def _cron_words(expr: str) -> str:
    parts = expr.split()
    if len(parts) != 5:
        return f"cron {expr!r}"
    minute, hour, dom, month, dow = parts
    if minute.startswith("*/") and hour == dom == month == dow == "*":
        return _every(int(minute[2:]) * 60) if minute[2:].isdigit() else f"cron {expr!r}"
    if not (minute.isdigit() and dom == month == "*"):
        return f"cron {expr!r}"
    if hour == "*" and dow == "*":
        return f"every hour at minute {int(minute)}"
    if not hour.isdigit():
        return f"cron {expr!r}"
    at = f"at {int(hour):02d}:{int(minute):02d}"
    if dow == "*":
        return f"every day {at}"
    if dow.isdigit() and int(dow) <= 7:
        return f"every {_DAYS[int(dow) % 7]} {at}"
    if dow == "1-5":
        return f"every weekday {at}"
    return f"cron {expr!r}"


def in_words(schedule: Schedule) -> str:
    """``every day at 09:00 (Europe/Berlin)``, or the expression when it is not simple."""
    if schedule.cron is not None:
        what = _cron_words(schedule.cron)
    elif schedule.interval is not None:
        what = _every(schedule.interval)
    else:
        what = f"rrule {schedule.rrule!r}"
    return f"{what[0].upper()}{what[1:]} ({schedule.timezone})"


def preview(schedule: Schedule) -> list[dict[str, Any]]:
    """The next runs in the schedule's zone and in UTC; a change of UTC offset is marked."""
    tz = zone(schedule.timezone)
    out: list[dict[str, Any]] = []
    previous = None
    for moment in next_times(schedule, _time.now(), PREVIEW):
        local = moment.astimezone(tz)
        offset = local.utcoffset()
        out.append(
            {
                "local": local.strftime("%a %Y-%m-%d %H:%M:%S %Z"),
                "utc": _time.ensure_utc(moment).strftime("%Y-%m-%d %H:%M:%SZ"),
                "shift": previous is not None and offset != previous,
            }
        )
        previous = offset
    return out


def _trend(rows: list[run_views.RunRow]) -> list[dict[str, Any]]:
    finished = [r for r in reversed(rows) if r.duration is not None and r.end is not None]
    longest = max((r.duration or 0 for r in finished), default=0) or 1
    return [
        {"id": r.id, "pct": 100 * (r.duration or 0) / longest, "type": r.type, "d": r.duration}
        for r in finished
    ]


def detail_context(deployment: Deployment) -> dict[str, Any]:
    rows = run_views.read_rows("flow", run_views.deployment_run_ids(str(deployment.id), RECENT))
    return {
        "d": deployment,
        "schedules": [(s, in_words(s), preview(s)) for s in deployment.schedules],
        "recent": rows,
        "trend": _trend(rows),
        "parameters": orjson.dumps(deployment.parameters, option=orjson.OPT_INDENT_2).decode(),
    }


def run_context(
    deployment: Deployment, fields: list[forms.Field] | None = None, error: str = "", raw: str = ""
) -> dict[str, Any]:
    schema = deployment.parameter_openapi_schema or {}
    if fields is None:
        fields = forms.fields_for(schema, deployment.parameters)
    free = not schema.get("properties")
    return {"d": deployment, "fields": fields, "free_form": free, "form_error": error, "raw": raw}


def _submit(ui: Renderer, request: Request, deployment: Deployment, form: Form) -> Response:
    ctx = run_context(deployment)
    values: dict[str, Any] = {}
    if ctx["free_form"]:
        raw = form.get("parameters_json").strip() or "{}"
        try:
            values = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _again(ui, request, deployment, [], f"Parameters are not valid JSON: {exc}", raw)
        if not isinstance(values, dict):
            return _again(ui, request, deployment, [], "Parameters must be a JSON object.", raw)
    else:
        values, ok = forms.parse(ctx["fields"], form)
        if not ok:
            return _again(ui, request, deployment, ctx["fields"], "")
    try:
        run = create_flow_run_from_deployment(deployment.id, parameters=values)
    except ValidationError as exc:
        placed = forms.place_error(ctx["fields"], str(exc))
        return _again(ui, request, deployment, ctx["fields"], "" if placed else str(exc))
    return RedirectResponse(f"/flow-runs/{run.id}", status_code=303)


def _again(
    ui: Renderer,
    request: Request,
    d: Deployment,
    fields: list[forms.Field],
    error: str,
    raw: str = "",
) -> HTMLResponse:
    return ui.html(request, "deployment_run.html", status=422, **run_context(d, fields, error, raw))


def router(ui: Renderer) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/deployments", response_class=HTMLResponse)
    @guarded(ui)
    def deployments(request: Request) -> HTMLResponse:
        prefix = request.query_params.get("q", "")[:200]
        page = request.query_params.get("page", "1")
        if not page.isdigit() or not 1 <= int(page) <= 10_000:
            raise ValidationError("page must be a number from 1 to 10000")
        offset = (int(page) - 1) * PAGE_SIZE
        found = store.list_deployments(prefix, limit=PAGE_SIZE + 1, offset=offset)
        return ui.html(
            request,
            "deployments.html",
            rows=[(d, [in_words(s) for s in d.schedules]) for d in found[:PAGE_SIZE]],
            has_more=len(found) > PAGE_SIZE,
            page=int(page),
            q=prefix,
        )

    @r.get("/deployments/{dep_id}", response_class=HTMLResponse)
    @guarded(ui)
    def deployment(request: Request, dep_id: str) -> HTMLResponse:
        found = read_deployment(parse_uuid(dep_id, "deployment"))
        return ui.html(request, "deployment.html", **detail_context(found))

    @r.get("/deployments/{dep_id}/run", response_class=HTMLResponse)
    @guarded(ui)
    def run_form(request: Request, dep_id: str) -> HTMLResponse:
        found = read_deployment(parse_uuid(dep_id, "deployment"))
        return ui.html(request, "deployment_run.html", **run_context(found))

    @r.post("/deployments/{dep_id}/run")
    @guarded(ui)
    def run_submit(request: Request, dep_id: str, form: FormDep) -> Response:
        form.check(request, ui.csrf)
        require(request, "run")
        return _submit(ui, request, read_deployment(parse_uuid(dep_id, "deployment")), form)

    @r.post("/deployments/{dep_id}/pause")
    @guarded(ui)
    def pause(request: Request, dep_id: str, form: FormDep) -> Response:
        form.check(request, ui.csrf)
        require(request, "admin")
        dep = parse_uuid(dep_id, "deployment")
        (resume_deployment if form.get("paused") == "false" else pause_deployment)(dep)
        return RedirectResponse(f"/deployments/{dep}", status_code=303)

    return r
