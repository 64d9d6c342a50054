"""Pieces of the flow engine that are not its state machine.

- ``SubflowLink``: a flow called inside another flow is also a task run of its parent
  (Prefect's "subflow task run"); the child flow run's ``parent_task_run_id`` points at
  it and its states mirror the child's.
- ``resolve_wait_for``: a flow's ``wait_for=`` upstreams must complete first.
- ``should_log_prints``: ``log_prints`` is inherited from the enclosing run unless set.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect_lite import _time
from prefect_lite.context import FlowRunContext, TaskRunContext, current_tags
from prefect_lite.engine import extensions, recorder
from prefect_lite.engine.inputs import resolve, scan_inputs, wait_future
from prefect_lite.engine.outcomes import new_state
from prefect_lite.engine.scope import FlowRunScope
from prefect_lite.schemas import RunInputRef, TaskRun
from prefect_lite.states import State, StateType


class SubflowLink:
    """The task run that stands for a subflow call in the parent flow run."""

    def __init__(self, task_run: TaskRun, parent: FlowRunScope) -> None:
        self.task_run = task_run
        self.parent = parent
        self._last: tuple[str, str | None] = ("PENDING", "Pending")

    @property
    def task_run_id(self) -> uuid.UUID:
        return self.task_run.id

    @classmethod
    def create(
        cls, flow: Any, parameters: dict[str, Any], wait_for: Any, parent: FlowRunScope
    ) -> SubflowLink:
        scan = scan_inputs(parameters, wait_for, parent)
        dynamic_key = str(parent.next_dynamic_key(flow.task_key))
        now = _time.now()
        run = TaskRun(
            name=f"{flow.name}-{dynamic_key}",
            flow_run_id=parent.flow_run_id,
            task_key=flow.task_key,
            dynamic_key=dynamic_key,
            task_version=flow.version,
            tags=sorted(current_tags()),
            task_inputs={k: [RunInputRef(id=i) for i in ids] for k, ids in scan.lineage.items()},
            expected_start_time=now,
            created=now,
            updated=now,
        )
        recorder.record(
            (parent.client, "create", run.id, new_state(StateType.PENDING, "Pending"), run, False)
        )
        return cls(run, parent)

    def mirror(self, state: State) -> None:
        """Give the subflow's new state to its task run (without the data)."""
        key = (state.type.value, state.name)
        if key == self._last:
            return
        self._last = key
        copy = new_state(state.type, state.name or state.type.value.title(), state.message)
        recorder.record((self.parent.client, "propose", self.task_run.id, copy, None, True))
        if state.type is StateType.COMPLETED and state.data is not None:
            self.parent.link_result(state.data, self.task_run.id)


def resolve_wait_for(wait_for: Any) -> None:
    """Wait for every upstream in ``wait_for``; ``UpstreamTaskError`` if one failed."""
    for future in scan_inputs({"wait_for": wait_for}, None, None).futures:
        future.wait()
    resolve(wait_for, wait_future)


def should_log_prints(flow: Any) -> bool:
    if flow.log_prints is not None:
        enabled = bool(flow.log_prints)
    else:
        parent = TaskRunContext.get() or FlowRunContext.get()
        enabled = bool(parent.log_prints) if parent is not None else False
    if enabled:
        extensions.enable_print_capture()
    return enabled
