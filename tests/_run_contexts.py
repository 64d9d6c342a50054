"""Run contexts entered by hand, for tests of code that runs inside flows and tasks
(logging, runtime) without depending on the engine."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prefect_lite.context import FlowRunContext, TaskRunContext
from prefect_lite.schemas import FlowRun, TaskRun


@dataclass
class Named:
    """Stands in for a Flow or Task object: the contexts only read these attributes."""

    name: str
    version: str | None = None
    log_prints: bool = False


def make_flow_run(name: str = "happy-run", flow_name: str = "my-flow", **fields: Any) -> FlowRun:
    return FlowRun(name=name, flow_id=uuid.uuid4(), flow_name=flow_name, **fields)


@contextlib.contextmanager
def flow_context(
    name: str = "happy-run",
    flow_name: str = "my-flow",
    flow_run: FlowRun | None = None,
    **context_fields: Any,
) -> Iterator[FlowRunContext]:
    run = flow_run or make_flow_run(name, flow_name)
    with FlowRunContext(flow=Named(flow_name), flow_run=run, **context_fields) as ctx:
        yield ctx


@contextlib.contextmanager
def task_context(
    name: str = "my-task-0",
    task_name: str = "my-task",
    task_run: TaskRun | None = None,
    **context_fields: Any,
) -> Iterator[TaskRunContext]:
    """A task run of the current flow run (or of none, outside a flow)."""
    if task_run is None:
        flow_ctx = FlowRunContext.get()
        task_run = TaskRun(
            name=name,
            task_key=task_name,
            flow_run_id=flow_ctx.flow_run.id if flow_ctx is not None else None,
        )
    with TaskRunContext(task=Named(task_name), task_run=task_run, **context_fields) as ctx:
        yield ctx
