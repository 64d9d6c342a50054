"""Task run handlers, including the batched write path the engine uses."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from prefect_lite.api.registry import operation
from prefect_lite.api.text_limits import check_length, check_tags
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.schemas import OrchestrationResult, TaskRun, check_paging
from prefect_lite.states import State
from prefect_lite.storage import runs, task_batch


class TaskRunChange(BaseModel):
    """One queued write: create a task run with a first state, or propose a state."""

    op: Literal["create", "propose"]
    task_run_id: uuid.UUID
    state: State
    task_run: TaskRun | None = None
    force: bool = False


@operation("POST", "/task_runs/", status_code=201, tag="task_runs", role="worker")
def create_task_run(task_run: TaskRun, state: State) -> TaskRun:
    _check_task_run(task_run)
    created, run_id = runs.create_run("task", task_run, state)
    if not created:
        return read_task_run(run_id)
    task_run.state, task_run.state_type, task_run.state_name = state, state.type, state.name
    task_run.version = 1
    return task_run


@operation("POST", "/task_runs/changes", tag="task_runs", role="worker")
def apply_task_run_changes(changes: list[TaskRunChange]) -> list[str]:
    """Apply queued creates/proposals in order in one round trip; returns each status."""
    for change in changes:
        if change.task_run is not None:
            _check_task_run(change.task_run)
    return apply_task_run_rows(
        [(c.op, c.task_run_id, c.state, c.task_run, c.force) for c in changes]
    )


def apply_task_run_rows(rows: Sequence[task_batch.TaskChange]) -> list[str]:
    """``apply_task_run_changes`` from plain ``(op, task_run_id, state, task_run, force)``
    rows: what an in-process client calls, skipping the change models (the engine's hot
    path; the HTTP route above validates them)."""
    return task_batch.apply_task_changes(rows)


@operation("POST", "/task_runs/{task_run_id}/set_state", tag="task_runs", role="worker")
def set_task_run_state(
    task_run_id: uuid.UUID, state: State, force: bool = False
) -> OrchestrationResult:
    result = runs.propose("task", task_run_id, runs.Proposal(state=state, force=force))
    if result.status == "ABORT":
        raise ObjectNotFound(f"no task run with id {task_run_id}")
    return result


@operation("GET", "/task_runs/{task_run_id}", tag="task_runs", role="read")
def read_task_run(task_run_id: uuid.UUID) -> TaskRun:
    run = runs.read_run("task", task_run_id)
    if run is None:
        raise ObjectNotFound(f"no task run with id {task_run_id}")
    return run


@operation("POST", "/task_runs/filter", tag="task_runs", role="read")
def read_task_runs(flow_run_id: uuid.UUID, limit: int = 10_000) -> list[TaskRun]:
    """Task runs of a flow run, in creation order (at most ``limit``, 1..10,000)."""
    check_paging(limit, 0)
    return runs.read_runs("task", runs.task_run_ids_of(flow_run_id)[:limit])


@operation("GET", "/task_runs/{task_run_id}/states", tag="task_runs", role="read")
def read_task_run_states(task_run_id: uuid.UUID) -> list[State]:
    return runs.history("task", task_run_id)


def _check_task_run(task_run: TaskRun) -> None:
    check_length(task_run.name, "task run name")
    check_tags(task_run.tags, "task run tags")
