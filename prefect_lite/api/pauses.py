"""Pausing and resuming flow runs (Prefect's pause/suspend rules).

- ``pause_flow_run`` proposes a Paused or Suspended state for a RUNNING run. A pause key
  fires once per run: a key already found among the run's Paused states is rejected and
  the run keeps running (a suspended run that re-executes from the top passes its old
  pause points this way). Suspending needs a deployment (a worker re-runs the run) and is
  refused for subflows.
- ``resume_flow_run`` checks the pause has not expired (an expired one fails the run),
  validates the input against the JSON schema the paused run stored in its keyset
  (invalid: ``ValidationError``, the run stays paused), then proposes Running (pause) or
  Scheduled again (suspend: the scheduler hands the run to a worker), stores the input as
  the keyset's ``response`` and wakes the waiting process.
- ``wait_for_flow_run_resume`` blocks (at most 10 s a call) until the run leaves its
  Paused state, on the resume token list rather than by polling.

Each proposal carries the version read, so a concurrent change makes it stale and it is
decided again on fresh data.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import anyio.to_thread

from prefect_lite import _time
from prefect_lite.api.flow_run_inputs import check_input_value, store_input
from prefect_lite.api.flow_runs import read_flow_run
from prefect_lite.api.json_schemas import validation_error, validator
from prefect_lite.api.registry import operation, served_async
from prefect_lite.exceptions import FlowPauseTimeout, NotPausedError, ValidationError
from prefect_lite.schemas import FlowRun, OrchestrationResult, RunInput
from prefect_lite.states import AwaitingRetry, Failed, Running, State, StateType
from prefect_lite.storage import async_waits, inputs, runs

MAX_ATTEMPTS = 5  # re-decisions after a stale proposal (another writer changed the run)
WAIT_SLICE_SECONDS = 2.0  # how often a waiter re-reads the state (e.g. cancelled meanwhile)
RESUMED_MESSAGE = "Resumed; rescheduled to finish the run."


def _verb(state: State) -> str:
    return "suspend" if state.name == "Suspended" else "pause"


def fired_pause_keys(flow_run_id: uuid.UUID) -> set[str]:
    """Pause keys of every Paused/Suspended state the run has been in."""
    return {
        s.state_details.pause_key
        for s in runs.history("flow", flow_run_id)
        if s.type is StateType.PAUSED and s.state_details.pause_key is not None
    }


def _refusal(run: FlowRun, reason: str, abort: bool = False) -> OrchestrationResult:
    return OrchestrationResult(
        status="ABORT" if abort else "REJECT", state=run.state, version=run.version, details=reason
    )


def _propose(run: FlowRun, state: State) -> OrchestrationResult | None:
    """Propose ``state`` at the version read; None if another writer got there first."""
    proposal = runs.Proposal(state=state, expected_version=run.version)
    result = runs.propose("flow", run.id, proposal)
    if result.status == "REJECT" and result.version != run.version:
        return None  # stale: decide again on fresh data
    return result


@operation("POST", "/flow_runs/{flow_run_id}/pause", tag="flow_runs", role="worker")
def pause_flow_run(flow_run_id: uuid.UUID, state: State) -> OrchestrationResult:
    """Pause (or suspend) a running flow run with a Paused/Suspended ``state``.

    REJECT (with the current state) if the run is not running or the pause key already
    fired; ABORT if the run cannot be suspended (no deployment, or a subflow)."""
    if state.type is not StateType.PAUSED:
        raise ValidationError(f"pause_flow_run needs a Paused or Suspended state, not {state}")
    verb = _verb(state)
    if state.state_details.pause_key is None:
        state.state_details.pause_key = str(uuid.uuid4())
    key = state.state_details.pause_key
    for _ in range(MAX_ATTEMPTS):
        run = read_flow_run(flow_run_id)
        if run.state is None or run.state.type is not StateType.RUNNING:
            return _refusal(run, f"Cannot {verb} flows that are not currently running.")
        if key in fired_pause_keys(flow_run_id):
            return _refusal(run, f"This {verb} has already fired.")
        if state.state_details.pause_reschedule:
            if run.parent_task_run_id is not None:
                return _refusal(run, f"Cannot {verb} subflows.", abort=True)
            if run.deployment_id is None:
                return _refusal(run, f"Cannot {verb} flows without a deployment.", abort=True)
        inputs.clear_resume_tokens(flow_run_id)
        result = _propose(run, state)
        if result is not None:
            return result
    raise RuntimeError(f"flow run {flow_run_id} kept changing while being paused")


def _check_run_input(run: FlowRun, keyset: dict[str, str], run_input: Any) -> Any:
    """The input to store as the keyset's response, validated against the stored schema."""
    found = inputs.get(run.id, keyset["schema"])
    if found is None or not isinstance(found.value, dict):
        raise ValidationError(
            f"flow run {run.id} waits for input but its input schema is missing; "
            "it cannot be resumed with input"
        )
    schema: dict[str, Any] = found.value
    properties = schema.get("properties") or {}
    if run_input is None:
        run_input = {}
    elif not isinstance(run_input, dict) and set(properties) == {"value"}:
        run_input = {"value": run_input}  # a plain value for a wait_for_input=str/int... run
    if not isinstance(run_input, dict):
        raise ValidationError(
            f"run input must be a JSON object with the fields of {schema.get('title', 'the')} "
            f"input, not {type(run_input).__name__}"
        )
    try:
        checker = validator(schema, "the stored input schema")
    except ValidationError as exc:
        raise ValidationError(f"flow run {run.id} cannot be resumed with input: {exc}") from None
    problem = validation_error(checker, run_input)
    if problem is not None:
        raise ValidationError(f"invalid run input for flow run {run.id} {problem}")
    return run_input


def _expire(run: FlowRun, verb: str) -> None:
    message = f"The flow was {'suspended' if verb == 'suspend' else 'paused'} and never resumed."
    _propose(run, Failed(message=message))
    raise FlowPauseTimeout(f"flow run {run.id}: the {verb} timed out; it can no longer resume")


@operation("POST", "/flow_runs/{flow_run_id}/resume", tag="flow_runs", role="run")
def resume_flow_run(flow_run_id: uuid.UUID, run_input: Any = None) -> OrchestrationResult:
    """Resume a paused or suspended flow run, with ``run_input`` if it waits for input.

    The input is validated against the schema the run stored (a wrong one is a
    ``ValidationError`` and the run stays paused). A suspended run is scheduled again; a
    paused one runs on in its waiting process."""
    for _ in range(MAX_ATTEMPTS):
        run = read_flow_run(flow_run_id)
        state = run.state
        if state is None or state.type is not StateType.PAUSED:
            current = state.name if state is not None else "without a state"
            raise NotPausedError(f"flow run {flow_run_id} is not paused (it is {current})")
        details = state.state_details
        verb = _verb(state)
        if details.pause_timeout is not None and details.pause_timeout < _time.now():
            _expire(run, verb)
        keyset = details.run_input_keyset
        response = _check_run_input(run, keyset, run_input) if keyset else None
        if keyset:
            check_input_value(keyset["response"], response)  # before the run moves on
        if details.pause_reschedule:
            new: State = AwaitingRetry(scheduled_time=_time.now(), message=RESUMED_MESSAGE)
        else:
            new = Running(message="Resumed.")
        result = _propose(run, new)
        if result is None:
            continue
        if result.status == "ACCEPT":
            if keyset:
                record = RunInput(flow_run_id=run.id, key=keyset["response"], value=response)
                store_input(record, overwrite=True)
            inputs.push_resume_token(run.id)
        return result
    raise RuntimeError(f"flow run {flow_run_id} kept changing while being resumed")


@operation("POST", "/flow_runs/{flow_run_id}/resume/wait", tag="flow_runs", role="read")
def wait_for_flow_run_resume(flow_run_id: uuid.UUID, timeout: float = 10.0) -> State | None:
    """Wait up to ``timeout`` seconds (at most 10) while the run is paused; its state then."""
    _check_wait(timeout)
    deadline = time.monotonic() + timeout
    while True:
        state = read_flow_run(flow_run_id).state
        remaining = deadline - time.monotonic()
        if state is None or state.type is not StateType.PAUSED or remaining <= 0:
            return state
        inputs.wait_resume_token(flow_run_id, min(remaining, WAIT_SLICE_SECONDS))


@served_async(wait_for_flow_run_resume)
async def wait_for_flow_run_resume_async(
    flow_run_id: uuid.UUID, timeout: float = 10.0
) -> State | None:
    """``wait_for_flow_run_resume`` on the event loop (the HTTP server's), woken by the
    run's state changes."""
    _check_wait(timeout)
    state: State | None = None

    async def left_pause() -> bool:
        nonlocal state
        state = (await anyio.to_thread.run_sync(read_flow_run, flow_run_id)).state
        return state is None or state.type is not StateType.PAUSED

    if await left_pause() or timeout <= 0:
        return state
    await async_waits.wait_until(async_waits.run_channel(str(flow_run_id)), left_pause, timeout)
    return state


def _check_wait(timeout: float) -> None:
    if not 0 <= timeout <= inputs.MAX_BLOCK_SECONDS:
        raise ValidationError(
            f"timeout must be between 0 and {inputs.MAX_BLOCK_SECONDS:g} seconds, not {timeout}"
        )
