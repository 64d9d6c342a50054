"""Cancelling flow runs: ask, cascade to subflow runs, settle what a stopped process left.

``cancel_flow_run`` proposes CANCELLING. The transition table turns it into CANCELLED at
once for a run that has not started (SCHEDULED, PENDING) or is paused; a running run stays
CANCELLING until its worker - told through the cancel channel that ``propose_state``
publishes on - stops its process (SIGTERM, then SIGKILL after a grace period) and the run
ends CANCELLED. Subflow runs that have not ended are asked too, since they run in their
parent's process. ``settle_subflows`` ends the ones a stopped process left behind.
"""

from __future__ import annotations

import uuid
from collections import deque

from prefect_lite.exceptions import ObjectNotFound, ValidationError
from prefect_lite.schemas import OrchestrationResult
from prefect_lite.states import Cancelled, Cancelling, Crashed, State, StateType
from prefect_lite.storage import runs

MAX_SUBFLOWS = 10_000  # runs visited when cascading (a guard against runaway fan-out)
DEFAULT_MESSAGE = "Cancelled by request."


def subflow_runs(flow_run_id: uuid.UUID | str) -> list[str]:
    """Every flow run created inside this one, at any depth (breadth first)."""
    found: list[str] = []
    pending = deque([str(flow_run_id)])
    while pending and len(found) < MAX_SUBFLOWS:
        for child in runs.subflow_run_ids_of(pending.popleft()):
            found.append(child)
            pending.append(child)
    return found


def cancel_flow_run(flow_run_id: uuid.UUID, message: str | None = None) -> OrchestrationResult:
    """Ask the run (and its unfinished subflow runs) to stop; what the run's state became.

    Raises ``ObjectNotFound`` for an unknown id and ``ValidationError`` for a run that has
    already ended.
    """
    reason = message or DEFAULT_MESSAGE
    result = runs.propose("flow", flow_run_id, runs.Proposal(state=Cancelling(message=reason)))
    if result.status == "ABORT":
        raise ObjectNotFound(f"no flow run with id {flow_run_id}")
    if result.status == "REJECT":
        current = result.state
        if current is not None and current.is_final():
            raise ValidationError(
                f"flow run {flow_run_id} already ended {current.name}; nothing to cancel"
            )
        if current is None or current.type is not StateType.CANCELLING:
            return result
    batch = runs.RunBatch()
    why = f"Its parent flow run {flow_run_id} was cancelled: {reason}"
    for child in _unfinished(subflow_runs(flow_run_id)):
        batch.propose("flow", child, runs.Proposal(state=Cancelling(message=why)))
    if len(batch):
        batch.execute()
    return result


def settle_subflows(flow_run_id: uuid.UUID | str, state_type: StateType, message: str) -> int:
    """After a run's process stopped: its subflow runs that did not end become CANCELLED
    or CRASHED (forced: nothing is left to report them). How many."""
    children = _unfinished(subflow_runs(flow_run_id))
    batch = runs.RunBatch()
    for child in children:
        state: State = (
            Cancelled(message=message)
            if state_type is StateType.CANCELLED
            else Crashed(message=message)
        )
        batch.propose("flow", child, runs.Proposal(state=state, force=True))
    if len(batch):
        batch.execute()
    return len(children)


def _unfinished(run_ids: list[str]) -> list[str]:
    return [
        str(r.id) for r in runs.read_runs("flow", run_ids) if not r.state or not r.state.is_final()
    ]
