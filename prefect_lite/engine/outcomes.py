"""From what a run's function did to the State it ends in.

- a returned value -> ``Completed(data=value)``;
- a returned State made by the user -> that state; a returned state of another run, or
  a list/tuple/set of them -> the aggregate (all completed -> Completed, else Failed with
  "n/m states failed.", as Prefect);
- a raised exception -> ``Failed`` with ``"<prefix> <Type>: <message>"``;
- an interrupt (KeyboardInterrupt, SystemExit, a termination signal) -> ``Crashed``.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect_lite import _time
from prefect_lite.engine.records import make_state, state_details
from prefect_lite.exceptions import TerminationSignal
from prefect_lite.states import State, StateDetails, StateType

RUNNING, COMPLETED, FAILED = StateType.RUNNING, StateType.COMPLETED, StateType.FAILED


new_state = make_state  # (type, name, message=None, data=None, details=None), no validation


def run_details(
    task_run_id: uuid.UUID | None = None, flow_run_id: uuid.UUID | None = None
) -> StateDetails:
    return state_details(task_run_id=task_run_id, flow_run_id=flow_run_id)


def awaiting_retry(delay: float) -> State:
    details = state_details(scheduled_time=_time.now() + _seconds(delay))
    return new_state(StateType.SCHEDULED, "AwaitingRetry", details=details)


def _seconds(value: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=value)


def format_exception(exc: BaseException) -> str:
    """``ValueError: bad`` for builtins, ``package.module.Error: bad`` otherwise."""
    kind = type(exc)
    name = (
        kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    )
    text = str(exc)
    return f"{name}: {text}" if text else name


def failed_state(exc: BaseException, prefix: str, details: StateDetails | None = None) -> State:
    return new_state(FAILED, "Failed", f"{prefix} {format_exception(exc)}", exc, details)


def crashed_state(exc: BaseException, details: StateDetails | None = None) -> State:
    if isinstance(exc, KeyboardInterrupt):
        message = "Execution was aborted by an interrupt signal."
    elif isinstance(exc, SystemExit):
        message = "Execution was aborted by Python system exit call."
    elif isinstance(exc, TerminationSignal):
        message = f"Execution was cancelled by the runtime environment: {exc}".rstrip(": ")
        message += "." if str(exc) else ""
    else:
        message = f"Execution was interrupted by an unexpected exception: {format_exception(exc)}"
    return new_state(StateType.CRASHED, "Crashed", message, exc, details)


def is_manual_state(value: Any) -> bool:
    """A State the function built itself (not the state of another run)."""
    return (
        isinstance(value, State)
        and value.state_details.task_run_id is None
        and value.state_details.flow_run_id is None
    )


def is_state_collection(value: Any) -> bool:
    return (
        isinstance(value, list | tuple | set)
        and bool(value)
        and all(isinstance(v, State) for v in value)
    )


def return_value_to_state(value: Any, details: StateDetails | None = None) -> State:
    """The final state for a function that returned ``value`` (see module doc)."""
    if is_manual_state(value):
        state: State = value
        if details is not None:
            state.state_details.task_run_id = details.task_run_id
            state.state_details.flow_run_id = details.flow_run_id
        return state
    if isinstance(value, State) or is_state_collection(value):
        states = [value] if isinstance(value, State) else list(value)
        total = len(states)
        counts = {t: sum(1 for s in states if s.type == t) for t in {s.type for s in states}}
        if counts.get(COMPLETED, 0) == total:
            return new_state(COMPLETED, "Completed", "All states completed.", value, details)
        if counts.get(StateType.CANCELLED):
            kind, message = (
                StateType.CANCELLED,
                f"{counts[StateType.CANCELLED]}/{total} states cancelled.",
            )
        elif counts.get(StateType.PAUSED):
            kind, message = StateType.PAUSED, f"{counts[StateType.PAUSED]}/{total} states paused."
        elif counts.get(FAILED) or counts.get(StateType.CRASHED):
            failed = counts.get(FAILED, 0) + counts.get(StateType.CRASHED, 0)
            kind, message = FAILED, f"{failed}/{total} states failed."
        else:
            unfinished = sum(1 for s in states if not s.is_final())
            kind, message = FAILED, f"{unfinished}/{total} states are not final."
        names = {StateType.CANCELLED: "Cancelled", StateType.PAUSED: "Paused", FAILED: "Failed"}
        return new_state(kind, names[kind], message, value, details)
    return new_state(COMPLETED, "Completed", None, value, details)
