"""Flow run actions: cancel, retry, resume (with its input form) and set state.

Each action checks the CSRF token and the caller's role before calling the same API
handler a client's request would, then goes back to the run's page (303). A resume whose
input does not validate shows the page again with the errors next to their fields.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from prefect_lite import _time
from prefect_lite.api.cancellation import cancel_flow_run
from prefect_lite.api.flow_runs import read_flow_run, set_flow_run_state
from prefect_lite.api.pauses import resume_flow_run
from prefect_lite.exceptions import ValidationError
from prefect_lite.orchestration import admission
from prefect_lite.server.ui import forms
from prefect_lite.server.ui.pages_flow_run import FINAL, page_context, resume_fields
from prefect_lite.server.ui.render import Renderer, guarded, parse_uuid
from prefect_lite.server.ui.security import FormDep, require
from prefect_lite.states import AwaitingRetry, State, StateType

SETTABLE = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED", "SCHEDULED")
MAX_MESSAGE = 2000


def _back(run_id: object) -> RedirectResponse:
    return RedirectResponse(f"/flow-runs/{run_id}", status_code=303)


def _refused(result_details: str | None, what: str) -> ValidationError:
    return ValidationError(f"the run could not be {what}: {result_details or 'refused'}")


def _retry(run_id: uuid.UUID) -> uuid.UUID:
    """Schedule a finished deployment run again, now (straight to its pool if it has one)."""
    run = read_flow_run(run_id)
    if str(run.state_type) not in FINAL or run.deployment_id is None:
        raise ValidationError("only a finished run of a deployment can be retried")
    state = AwaitingRetry(scheduled_time=_time.now(), message="Retried from the web UI.")
    result = set_flow_run_state(run.id, state, force=True)
    if result.status != "ACCEPT":
        raise _refused(result.details, "retried")
    if run.work_pool_name:
        admission.submit([str(run.id)])
    return run.id


def router(ui: Renderer) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.post("/flow-runs/{run_id}/cancel")
    @guarded(ui)
    def cancel(request: Request, run_id: str, form: FormDep) -> Response:
        form.check(request, ui.csrf)
        require(request, "run")
        cancel_flow_run(parse_uuid(run_id, "flow run"), "Cancelled from the web UI.")
        return _back(run_id)

    @r.post("/flow-runs/{run_id}/retry")
    @guarded(ui)
    def retry(request: Request, run_id: str, form: FormDep) -> Response:
        form.check(request, ui.csrf)
        require(request, "run")
        return _back(_retry(parse_uuid(run_id, "flow run")))

    @r.post("/flow-runs/{run_id}/resume")
    @guarded(ui)
    def resume(request: Request, run_id: str, form: FormDep) -> Response:
        form.check(request, ui.csrf)
        require(request, "run")
        run = read_flow_run(parse_uuid(run_id, "flow run"))
        fields = resume_fields(run) if run.state_type == StateType.PAUSED else None
        values = None
        if fields is not None:
            values, ok = forms.parse(fields, form)
            if not ok:
                return _form_again(ui, request, run_id, fields, "")
        try:
            result = resume_flow_run(run.id, run_input=values)
        except ValidationError as exc:
            if fields is None:
                raise
            placed = forms.place_error(fields, str(exc))
            return _form_again(ui, request, run_id, fields, "" if placed else str(exc))
        if result.status != "ACCEPT":
            raise _refused(result.details, "resumed")
        return _back(run.id)

    @r.post("/flow-runs/{run_id}/set-state")
    @guarded(ui)
    def set_state(request: Request, run_id: str, form: FormDep) -> Response:
        form.check(request, ui.csrf)
        require(request, "admin")
        wanted = form.get("state")
        if wanted not in SETTABLE:
            raise ValidationError(f"state must be one of {', '.join(SETTABLE)}")
        message = form.get("message")[:MAX_MESSAGE] or "Set from the web UI."
        run = read_flow_run(parse_uuid(run_id, "flow run"))
        result = set_flow_run_state(
            run.id, State(type=StateType(wanted), message=message), force=True
        )
        if result.status != "ACCEPT":
            raise _refused(result.details, f"set to {wanted}")
        return _back(run.id)

    return r


def _form_again(
    ui: Renderer, request: Request, run_id: str, fields: list[forms.Field], error: str
) -> HTMLResponse:
    context = page_context(run_id, "")
    context.update(resume_fields=fields, form_error=error)
    return ui.html(request, "flow_run.html", status=422, **context)
