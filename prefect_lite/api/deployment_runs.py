"""Triggering a deployment: create one flow run of it, by id or by ``flow/deployment`` name.

The run gets the deployment's parameters with the given ones merged over them (checked
against the parameter schema when the deployment enforces it: unknown names, wrong types
and missing required parameters are a ``ValidationError`` naming the parameter), its tags
plus the given ones, its work pool and queue (a queue can be overridden) and job
variables. It starts SCHEDULED at ``scheduled_time`` (default now), so the scheduler's
promote step delivers it like any scheduled run; a run due now is handed to pool
admission at once, so an idle worker starts it within milliseconds rather than at the
next scheduler tick. The same ``idempotency_key`` for the same deployment returns the run
made the first time (the create script checks the key atomically).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

from prefect_lite import _time
from prefect_lite.api.deployments import read_deployment, read_deployment_by_name
from prefect_lite.api.flow_runs import read_flow_run
from prefect_lite.api.parameter_checks import check_parameters, check_required
from prefect_lite.api.registry import operation
from prefect_lite.api.task_runs import read_task_run
from prefect_lite.api.text_limits import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_RUN_NAME_LENGTH,
    check_tags,
)
from prefect_lite.api.work_pools import check_name
from prefect_lite.exceptions import PayloadTooLarge, ValidationError
from prefect_lite.names import generate_slug
from prefect_lite.orchestration import admission
from prefect_lite.schemas import Deployment, FlowRun
from prefect_lite.settings import get_settings
from prefect_lite.states import Scheduled
from prefect_lite.storage import runs


@operation(
    "POST",
    "/deployments/{deployment_id}/create_flow_run",
    status_code=201,
    tag="deployments",
    role=("run", "worker"),  # worker: a flow calling run_deployment
)
def create_flow_run_from_deployment(
    deployment_id: uuid.UUID,
    parameters: dict[str, Any] | None = None,
    scheduled_time: datetime | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    idempotency_key: str | None = None,
    work_queue_name: str | None = None,
    parent_task_run_id: uuid.UUID | None = None,
    job_variables: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    enforce_parameter_schema: bool | None = None,
) -> FlowRun:
    """Create a run of the deployment, SCHEDULED at ``scheduled_time`` (default now).

    ``parameters`` are merged over the deployment's; ``enforce_parameter_schema``
    overrides the deployment's setting for this run. The same ``idempotency_key`` returns
    the run created first with it.
    """
    deployment = read_deployment(deployment_id)
    return _create(
        deployment,
        parameters=parameters,
        scheduled_time=scheduled_time,
        name=name,
        tags=tags,
        idempotency_key=idempotency_key,
        work_queue_name=work_queue_name,
        parent_task_run_id=parent_task_run_id,
        job_variables=job_variables,
        context=context,
        enforce_parameter_schema=enforce_parameter_schema,
    )


@operation(
    "POST",
    "/deployments/name/{flow_name}/{deployment_name}/create_flow_run",
    status_code=201,
    tag="deployments",
    role=("run", "worker"),  # worker: a flow calling run_deployment
)
def create_flow_run_from_deployment_name(
    flow_name: str,
    deployment_name: str,
    parameters: dict[str, Any] | None = None,
    scheduled_time: datetime | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    idempotency_key: str | None = None,
    work_queue_name: str | None = None,
    parent_task_run_id: uuid.UUID | None = None,
    job_variables: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    enforce_parameter_schema: bool | None = None,
) -> FlowRun:
    """``create_flow_run_from_deployment`` for the deployment named
    ``flow_name/deployment_name``, in one request."""
    deployment = read_deployment_by_name(flow_name, deployment_name)
    return _create(
        deployment,
        parameters=parameters,
        scheduled_time=scheduled_time,
        name=name,
        tags=tags,
        idempotency_key=idempotency_key,
        work_queue_name=work_queue_name,
        parent_task_run_id=parent_task_run_id,
        job_variables=job_variables,
        context=context,
        enforce_parameter_schema=enforce_parameter_schema,
    )


def _create(
    deployment: Deployment,
    *,
    parameters: dict[str, Any] | None,
    scheduled_time: datetime | None,
    name: str | None,
    tags: list[str] | None,
    idempotency_key: str | None,
    work_queue_name: str | None,
    parent_task_run_id: uuid.UUID | None,
    job_variables: dict[str, Any] | None,
    context: dict[str, Any] | None,
    enforce_parameter_schema: bool | None,
) -> FlowRun:
    check_tags(tags, "flow run tags")
    merged = {**deployment.parameters, **(parameters or {})}
    _check_size(merged, "parameters (the deployment's defaults with this run's merged over)")
    enforce = (
        deployment.enforce_parameter_schema
        if enforce_parameter_schema is None
        else enforce_parameter_schema
    )
    schema = deployment.parameter_openapi_schema
    if enforce and schema:
        check_parameters(merged, schema, deployment.flow_name)
        check_required(merged, schema, deployment.flow_name)
    _check_text(name, "flow run name", MAX_RUN_NAME_LENGTH)
    _check_text(idempotency_key, "idempotency key", MAX_IDEMPOTENCY_KEY_LENGTH)
    if work_queue_name is not None:
        check_name(work_queue_name, "work queue name")
    variables = {**deployment.job_variables, **(job_variables or {})}
    _check_json(variables, "job_variables")
    _check_json(context or {}, "context")
    parent_flow_run_id = None
    if parent_task_run_id is not None:
        parent_flow_run_id = read_task_run(parent_task_run_id).flow_run_id
    when = _time.ensure_utc(scheduled_time) if scheduled_time is not None else _time.now()
    queue = work_queue_name or deployment.work_queue_name
    if deployment.work_pool_name and not queue:
        queue = admission.DEFAULT_QUEUE
    run = FlowRun(
        name=name or generate_slug(),
        flow_id=deployment.flow_id,
        flow_name=deployment.flow_name,
        deployment_id=deployment.id,
        deployment_version=deployment.version,
        work_pool_name=deployment.work_pool_name,
        work_queue_name=queue,
        parameters=merged,
        context=dict(context or {}),
        tags=sorted({*deployment.tags, *(tags or [])}),
        idempotency_key=idempotency_key or None,
        parent_task_run_id=parent_task_run_id,
        parent_flow_run_id=parent_flow_run_id,
        job_variables=variables,
        expected_start_time=when,
    )
    state = Scheduled(scheduled_time=when)
    created, run_id = runs.create_run("flow", run, state)
    if not created:
        return read_flow_run(run_id)
    # Due now: straight to a worker rather than at the scheduler's next tick. A run the
    # overlap policy or CANCEL_NEW cancelled at once is read back in its new state.
    due = deployment.work_pool_name and when <= _time.now()
    if due and str(run_id) in admission.submit([str(run_id)]).skipped:
        return read_flow_run(run_id)
    run.state, run.state_type, run.state_name, run.version = state, state.type, state.name, 1
    return run


def _check_size(value: Any, what: str) -> None:
    """JSON values, at most ``max_payload_bytes`` as JSON (``PayloadTooLarge`` past it)."""
    try:
        size = len(orjson.dumps(value))
    except TypeError as exc:
        raise ValidationError(f"{what} must be JSON values: {exc}") from None
    limit = get_settings().max_payload_bytes
    if size > limit:
        raise PayloadTooLarge(
            f"{what} are {size} bytes as JSON; the limit is {limit} bytes "
            "(PREFECT_LITE_MAX_PAYLOAD_BYTES)"
        )


def _check_json(value: Any, what: str) -> None:
    try:
        orjson.dumps(value)
    except TypeError as exc:
        raise ValidationError(f"{what} must be JSON values: {exc}") from None


def _check_text(value: str | None, what: str, limit: int) -> None:
    if value is None:
        return
    if not value.strip():
        raise ValidationError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValidationError(f"{what} is {len(value)} characters long; the limit is {limit}")
