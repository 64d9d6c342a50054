"""Deployment handlers: create (upsert), read, filter, pause/resume, schedules, delete.

``create_deployment`` is where every way of registering ends (SDK, CLI, YAML, HTTP). It
checks everything before writing anything: names, schedules (cron/rrule syntax, time zone,
interval), parameters against the parameter schema, the work pool. Redeploying the same
``flow/name`` keeps the id (derived from the name) and the ids of unchanged schedules.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Literal

import orjson
import pydantic

from prefect_lite import _time, schedules
from prefect_lite.api.flows import create_flow, flow_id_for
from prefect_lite.api.json_schemas import check_schema
from prefect_lite.api.parameter_checks import check_parameters
from prefect_lite.api.registry import operation
from prefect_lite.api.text_limits import (
    MAX_TEXT_LENGTH,
    MAX_VERSION_LENGTH,
    check_length,
    check_tags,
)
from prefect_lite.exceptions import ObjectNotFound, ValidationError
from prefect_lite.redaction import inline_credentials, mask_value
from prefect_lite.schemas import Deployment, Schedule, WorkPool, check_paging
from prefect_lite.storage import deployments as store
from prefect_lite.storage import scheduling
from prefect_lite.storage.records import NamedRecords

logger = logging.getLogger("prefect_lite.api.deployments")
DEPLOYMENT_NAMESPACE = uuid.UUID("6f8a9d4c-2b1e-5c3a-8e7f-0a1b2c3d4e5f")
WORK_POOL_KIND = "work_pool"
# False: an unknown pool is an error only once some pool is registered (pools arrive with
# the workers). True: every deployment must name a registered pool.
REQUIRE_REGISTERED_POOL = False
_pools: NamedRecords[WorkPool] = NamedRecords(WORK_POOL_KIND, WorkPool)
_schedule_list = pydantic.TypeAdapter(list[Schedule])


def deployment_id_for(flow_name: str, name: str) -> uuid.UUID:
    return uuid.uuid5(DEPLOYMENT_NAMESPACE, f"{flow_name}/{name}")


@operation("POST", "/deployments/", status_code=201, tag="deployments", role="admin")
def create_deployment(
    flow_name: str,
    name: str,
    entrypoint: str | None = None,
    path: str | None = None,
    pull_steps: list[dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
    parameter_openapi_schema: dict[str, Any] | None = None,
    enforce_parameter_schema: bool = True,
    tags: list[str] | None = None,
    description: str | None = None,
    version: str | None = None,
    work_pool_name: str | None = None,
    work_queue_name: str | None = None,
    schedules: list[Schedule] | None = None,
    paused: bool = False,
    concurrency_limit: int | None = None,
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = "ENQUEUE",
    overlap: Literal["allow", "skip", "buffer_one", "cancel_other"] = "allow",
    job_variables: dict[str, Any] | None = None,
    start_timeout_seconds: float | None = None,
) -> Deployment:
    """Create the deployment, or update it in place (same id) if ``flow/name`` exists."""
    _check_name(flow_name, "flow name")
    _check_name(name, "deployment name")
    check_length(description, "deployment description", MAX_TEXT_LENGTH)
    check_length(version, "deployment version", MAX_VERSION_LENGTH)
    check_length(work_pool_name, "work pool name")
    check_length(work_queue_name, "work queue name")
    tags = check_tags(tags, "deployment tags")
    params = dict(parameters or {})
    _check_json(params, "parameters")
    schema = dict(parameter_openapi_schema or {})
    if schema:
        check_schema(schema, "parameter_openapi_schema")
    if enforce_parameter_schema and schema:
        check_parameters(params, schema, flow_name)
    if concurrency_limit is not None and concurrency_limit < 1:
        raise ValidationError(f"concurrency_limit must be at least 1, not {concurrency_limit}")
    if start_timeout_seconds is not None and not 0 < start_timeout_seconds <= 366 * 86400:
        raise ValidationError(
            f"start_timeout_seconds must be above 0 and at most a year, not {start_timeout_seconds}"
        )
    _check_work_pool(work_pool_name)
    previous = store.get_by_name(f"{flow_name}/{name}")
    steps = _steps_to_store(list(pull_steps or []), previous, f"{flow_name}/{name}")
    checked = _checked_schedules(schedules or [], previous)
    for schedule in checked:
        if enforce_parameter_schema and schema and schedule.parameters:
            check_parameters({**params, **schedule.parameters}, schema, flow_name)
    try:
        deployment = Deployment(
            id=previous.id if previous else deployment_id_for(flow_name, name),
            created=previous.created if previous else _time.now(),
            name=name,
            flow_id=flow_id_for(flow_name),
            flow_name=flow_name,
            entrypoint=entrypoint,
            path=path,
            pull_steps=steps,
            parameters=params,
            parameter_openapi_schema=schema,
            enforce_parameter_schema=enforce_parameter_schema,
            tags=list(tags or []),
            description=description,
            version=version,
            work_pool_name=work_pool_name or None,
            work_queue_name=work_queue_name or None,
            schedules=checked,
            paused=paused,
            concurrency_limit=concurrency_limit,
            collision_strategy=collision_strategy,
            overlap=overlap,
            job_variables=dict(job_variables or {}),
            start_timeout_seconds=start_timeout_seconds,
        )
    except pydantic.ValidationError as exc:
        raise ValidationError(_pydantic_message(exc, "deployment")) from None
    create_flow(flow_name)
    store.save(deployment)
    return masked(deployment)


@operation(
    "GET",
    "/deployments/{deployment_id}",
    tag="deployments",
    role="read",
    elevated={"include_secrets": "worker"},
)
def read_deployment(deployment_id: uuid.UUID, include_secrets: bool = False) -> Deployment:
    """The deployment; credentials in its pull steps masked unless ``include_secrets``
    (what a worker reads to run it)."""
    found = _stored(deployment_id)
    return found if include_secrets else masked(found)


@operation(
    "GET",
    "/deployments/name/{flow_name}/{deployment_name}",
    tag="deployments",
    role="read",
    elevated={"include_secrets": "worker"},
)
def read_deployment_by_name(
    flow_name: str, deployment_name: str, include_secrets: bool = False
) -> Deployment:
    found = store.get_by_name(f"{flow_name}/{deployment_name}")
    if found is None:
        raise ObjectNotFound(f"no deployment named '{flow_name}/{deployment_name}'")
    return found if include_secrets else masked(found)


@operation(
    "POST",
    "/deployments/filter",
    tag="deployments",
    role="read",
    elevated={"include_secrets": "worker"},
)
def read_deployments(
    flow_name: str | None = None, limit: int = 200, offset: int = 0, include_secrets: bool = False
) -> list[Deployment]:
    """Deployments ordered by full name, optionally of one flow."""
    check_paging(limit, offset)
    prefix = f"{flow_name}/" if flow_name else ""
    found = store.list_deployments(prefix, limit=limit, offset=offset)
    return found if include_secrets else [masked(d) for d in found]


@operation(
    "DELETE", "/deployments/{deployment_id}", status_code=204, tag="deployments", role="admin"
)
def delete_deployment(deployment_id: uuid.UUID) -> None:
    """Delete the deployment and its scheduled runs that have not started."""
    deployment = _stored(deployment_id)
    store.remove(deployment)
    scheduling.delete_unstarted(scheduling.unstarted_auto_runs(deployment.id))


@operation("POST", "/deployments/{deployment_id}/pause_deployment", tag="deployments", role="admin")
def pause_deployment(deployment_id: uuid.UUID) -> Deployment:
    """Stop scheduling; unstarted auto-scheduled runs are removed."""
    deployment = _stored(deployment_id)
    paused = deployment.model_copy(update={"paused": True, "updated": _time.now()})
    store.save(paused)
    scheduling.delete_unstarted(scheduling.unstarted_auto_runs(deployment.id))
    return masked(paused)


@operation(
    "POST", "/deployments/{deployment_id}/resume_deployment", tag="deployments", role="admin"
)
def resume_deployment(deployment_id: uuid.UUID) -> Deployment:
    """Schedule again from now on (nothing missed while paused is made up)."""
    deployment = _stored(deployment_id)
    resumed = deployment.model_copy(update={"paused": False, "updated": _time.now()})
    store.save(resumed)
    return masked(resumed)


@operation("GET", "/deployments/{deployment_id}/schedules", tag="deployments", role="read")
def read_deployment_schedules(deployment_id: uuid.UUID) -> list[Schedule]:
    return _stored(deployment_id).schedules


@operation(
    "PATCH", "/deployments/{deployment_id}/schedules/{schedule_id}", tag="deployments", role="admin"
)
def update_deployment_schedule(
    deployment_id: uuid.UUID, schedule_id: uuid.UUID, active: bool | None = None
) -> Schedule:
    """Pause (``active=False``) or resume one schedule; the scheduler re-plans at once."""
    deployment = _stored(deployment_id)
    found = next((s for s in deployment.schedules if s.id == schedule_id), None)
    if found is None:
        raise ObjectNotFound(f"deployment {deployment.full_name} has no schedule {schedule_id}")
    if active is not None:
        found.active = active
    deployment.updated = _time.now()
    store.save(deployment)
    return found


# ----------------------------------------------------------------------------- credentials


def _stored(deployment_id: uuid.UUID) -> Deployment:
    found = store.get_by_id(deployment_id)
    if found is None:
        raise ObjectNotFound(f"no deployment with id {deployment_id}")
    return found


def masked(deployment: Deployment) -> Deployment:
    """A copy of ``deployment`` with credentials in its pull steps masked."""
    shown = mask_value(deployment.pull_steps)
    if shown == deployment.pull_steps:
        return deployment
    return deployment.model_copy(update={"pull_steps": shown})


def _steps_to_store(
    steps: list[dict[str, Any]], previous: Deployment | None, full_name: str
) -> list[dict[str, Any]]:
    """The pull steps to store: a masked copy of the stored ones sent back (a read, edited
    elsewhere, then registered again) keeps the stored credentials. Inline credentials are
    stored as given, with a warning: a Secret block placeholder keeps them out."""
    for number, step in enumerate(steps, start=1):
        name, args = next(iter(step.items())) if len(step) == 1 else (None, None)
        if not isinstance(name, str) or not (args is None or isinstance(args, dict)):
            raise ValidationError(
                f"pull step {number} must map one function name to its arguments, "
                'e.g. {"prefect.deployments.steps.git_clone": {"repository": "https://..."}}'
            )
    resent = previous is not None and steps == mask_value(previous.pull_steps)
    if previous is not None and resent:
        return list(previous.pull_steps)
    inline = inline_credentials(steps, "pull_steps")
    if inline:
        logger.warning(
            "deployment %r stores credentials inline (%s); readers see them masked, but "
            "prefer a Secret block: {{ prefect.blocks.secret.NAME }}",
            full_name,
            ", ".join(inline),
        )
    return steps


# ----------------------------------------------------------------------------- checks


def _check_name(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be a non-empty string")
    check_length(value, what)
    if "/" in value:
        raise ValidationError(f"{what} {value!r} must not contain '/'")


def _check_json(value: Any, what: str) -> None:
    try:
        orjson.dumps(value)
    except TypeError as exc:
        raise ValidationError(f"{what} must be JSON values: {exc}") from None


def _check_work_pool(name: str | None) -> None:
    if not name:
        return
    if _pools.get(name) is not None:
        return
    if REQUIRE_REGISTERED_POOL or _pools.names(limit=1):
        raise ValidationError(f"unknown work pool {name!r}; create it first or pick another")


def _checked_schedules(given: list[Any], previous: Deployment | None) -> list[Schedule]:
    """Validate each schedule; keep the id, and a defaulted rrule anchor, of unchanged ones."""
    try:
        parsed = _schedule_list.validate_python([_as_dict(s) for s in given])
    except pydantic.ValidationError as exc:
        raise ValidationError(_pydantic_message(exc, "schedule")) from None
    old = list(previous.schedules) if previous else []
    out: list[Schedule] = []
    for schedule in parsed:
        match = _matching(schedule, old)
        if match is not None:
            old.remove(match)
            schedule.id = match.id
            if schedule.rrule and schedule.anchor_date is None:
                schedule.anchor_date = match.anchor_date
        if schedule.rrule and schedule.anchor_date is None and "DTSTART" not in schedule.rrule:
            # dateutil takes unset BYxxx parts from the start: fix it once, for every replica.
            schedule.anchor_date = _floor_minute(_time.now())
        out.append(schedules.checked(schedule))
    return out


def _as_dict(schedule: Any) -> Any:
    return schedule.model_dump() if isinstance(schedule, Schedule) else schedule


def _matching(schedule: Schedule, old: list[Schedule]) -> Schedule | None:
    if schedule.slug:
        return next((s for s in old if s.slug == schedule.slug), None)
    spec = ("cron", "interval", "rrule", "timezone", "day_or", "parameters")
    for candidate in old:
        same = all(getattr(candidate, f) == getattr(schedule, f) for f in spec)
        anchored = schedule.anchor_date is None or schedule.anchor_date == candidate.anchor_date
        if same and anchored and not candidate.slug:
            return candidate
    return None


def _floor_minute(when: datetime) -> datetime:
    return when.replace(second=0, microsecond=0)


def _pydantic_message(exc: pydantic.ValidationError, what: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"invalid {what}{' ' + where if where else ''}: {first.get('msg')}"
