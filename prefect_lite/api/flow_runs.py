"""Flow run handlers: create, read, filter, propose states, history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from prefect_lite import _time
from prefect_lite.api.flows import create_flow
from prefect_lite.api.registry import operation
from prefect_lite.api.text_limits import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_RUN_NAME_LENGTH,
    check_length,
    check_tags,
)
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.names import generate_slug
from prefect_lite.schemas import EmpiricalPolicy, FlowRun, OrchestrationResult, check_paging
from prefect_lite.states import Pending, State, StateType
from prefect_lite.storage import runs


@operation(
    "POST",
    "/flow_runs/",
    status_code=201,
    tag="flow_runs",
    role="worker",
    elevated={"deployment_id": "admin", "work_pool_name": "admin", "work_queue_name": "admin"},
)
def create_flow_run(
    flow_name: str,
    name: str | None = None,
    parameters: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    state: State | None = None,
    parent_task_run_id: uuid.UUID | None = None,
    parent_flow_run_id: uuid.UUID | None = None,
    deployment_id: uuid.UUID | None = None,
    work_pool_name: str | None = None,
    work_queue_name: str | None = None,
    idempotency_key: str | None = None,
    context: dict[str, Any] | None = None,
    empirical_policy: EmpiricalPolicy | None = None,
    expected_start_time: datetime | None = None,
    id: uuid.UUID | None = None,
) -> FlowRun:
    """Create a flow run (the flow record too, if new). An idempotency key returns the
    run created earlier with the same key."""
    check_length(name, "flow run name", MAX_RUN_NAME_LENGTH)
    check_length(work_pool_name, "work pool name")
    check_length(work_queue_name, "work queue name")
    check_length(idempotency_key, "idempotency key", MAX_IDEMPOTENCY_KEY_LENGTH)
    tags = check_tags(tags, "flow run tags")
    flow = create_flow(flow_name)
    state = state or Pending()
    run = FlowRun(
        id=id or uuid.uuid4(),
        name=name or generate_slug(),
        flow_id=flow.id,
        flow_name=flow_name,
        parameters=parameters or {},
        tags=tags or [],
        parent_task_run_id=parent_task_run_id,
        parent_flow_run_id=parent_flow_run_id,
        deployment_id=deployment_id,
        work_pool_name=work_pool_name,
        work_queue_name=work_queue_name,
        idempotency_key=idempotency_key,
        context=context or {},
        empirical_policy=empirical_policy or EmpiricalPolicy(),
        expected_start_time=expected_start_time
        or state.state_details.scheduled_time
        or _time.now(),
    )
    created, run_id = runs.create_run("flow", run, state)
    if not created:
        return read_flow_run(run_id)
    run.state, run.state_type, run.state_name, run.version = state, state.type, state.name, 1
    return run


@operation("GET", "/flow_runs/{flow_run_id}", tag="flow_runs", role="read")
def read_flow_run(flow_run_id: uuid.UUID) -> FlowRun:
    run = runs.read_run("flow", flow_run_id)
    if run is None:
        raise ObjectNotFound(f"no flow run with id {flow_run_id}")
    return run


@operation("POST", "/flow_runs/filter", tag="flow_runs", role="read")
def read_flow_runs(
    states: list[StateType] | None = None,
    flow_name: str | None = None,
    flow_id: uuid.UUID | None = None,
    deployment_id: uuid.UUID | None = None,
    tags: list[str] | None = None,
    start_after: datetime | None = None,
    start_before: datetime | None = None,
    limit: int = 200,
    offset: int = 0,
    newest_first: bool = True,
) -> list[FlowRun]:
    """Flow runs matching every given criterion, by expected start time."""
    check_paging(limit, offset)
    if flow_name and flow_id is None:
        from prefect_lite.api.flows import flow_id_for

        flow_id = flow_id_for(flow_name)
    query = runs.RunQuery(
        states=list(states or []),
        flow_id=flow_id,
        deployment_id=deployment_id,
        tags=list(tags or []),
        start_after=start_after.timestamp() if start_after else None,
        start_before=start_before.timestamp() if start_before else None,
        limit=limit,
        offset=offset,
        newest_first=newest_first,
    )
    return runs.read_runs("flow", runs.query_flow_run_ids(query))


@operation("POST", "/flow_runs/{flow_run_id}/set_state", tag="flow_runs", role="worker")
def set_flow_run_state(
    flow_run_id: uuid.UUID,
    state: State,
    force: bool = False,
    expected_version: int | None = None,
    lease: str | None = None,
    new_lease: str | None = None,
    lease_expiry: float | None = None,
) -> OrchestrationResult:
    """Propose a state; the transition table, version and lease decide."""
    proposal = runs.Proposal(
        state=state,
        expected_version=expected_version,
        lease=lease,
        new_lease=new_lease,
        lease_expiry=lease_expiry,
        force=force,
    )
    result = runs.propose("flow", flow_run_id, proposal)
    if result.status == "ABORT":
        raise ObjectNotFound(f"no flow run with id {flow_run_id}")
    return result


@operation("GET", "/flow_runs/{flow_run_id}/states", tag="flow_runs", role="read")
def read_flow_run_states(flow_run_id: uuid.UUID) -> list[State]:
    return runs.history("flow", flow_run_id)


@operation("PATCH", "/flow_runs/{flow_run_id}", status_code=204, tag="flow_runs", role="worker")
def update_flow_run(
    flow_run_id: uuid.UUID,
    name: str | None = None,
    empirical_policy: EmpiricalPolicy | None = None,
    worker_name: str | None = None,
    infrastructure_pid: int | None = None,
    tags: list[str] | None = None,
) -> None:
    check_length(name, "flow run name", MAX_RUN_NAME_LENGTH)
    check_length(worker_name, "worker name")
    if tags is not None:
        tags = check_tags(tags, "flow run tags")
    read_flow_run(flow_run_id)
    fields = {
        k: v
        for k, v in {
            "name": name,
            "empirical_policy": empirical_policy,
            "worker_name": worker_name,
            "infrastructure_pid": infrastructure_pid,
            "tags": tags,
        }.items()
        if v is not None
    }
    if fields:
        runs.update_record("flow", flow_run_id, **fields)
