"""Human in the loop: pause, suspend and resume flow runs, optionally with typed input.

- ``pause_flow_run()`` (inside a flow run): the run goes Paused and this process waits,
  blocked on the store, until someone resumes it (returning the input given, with
  ``wait_for_input``) or ``timeout`` passes (``FlowPauseTimeout``: the run fails, never
  resumed).
- ``suspend_flow_run()`` (inside a deployment's flow run): the run goes Suspended and its
  process ends (the ``Pause`` signal), freeing its worker slot. Resuming schedules it
  again; a worker runs it from the top, and at the same call ``suspend_flow_run`` returns
  the input given. Tasks with persisted results (cached per run) are not run again.
- ``resume_flow_run(id, run_input)``: validated against the schema the run stored (a
  ``ValidationError`` leaves it paused).

Pause keys default to a per-run count of pause/suspend calls ("1", "2"...), so a run that
re-executes from the top meets the same keys in the same order; a key fires once per run.
In async flows, ``await`` these functions.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, NoReturn

from prefect_lite.context import FlowRunContext, TaskRunContext
from prefect_lite.exceptions import Abort, FlowPauseTimeout, NotPausedError, Pause
from prefect_lite.input.actions import client_scope
from prefect_lite.input.run_input import (
    BaseRunInput,
    Keyset,
    keyset_from_paused_state,
    run_input_subclass_from_type,
)
from prefect_lite.logging import get_run_logger
from prefect_lite.states import Paused, State, StateType, Suspended
from prefect_lite.utilities.asyncutils import sync_compatible

WAIT_SLICE_SECONDS = 10.0  # one blocking call to the API waits at most this long
RESPONSE_GRACE_SECONDS = 30.0  # a resumer stores the input right after the state changes
_PAUSE_COUNTER = "observed_flow_pauses"


def _observed_flow_pauses(context: FlowRunContext) -> int:
    """1, 2, 3... per pause/suspend call of this flow run execution."""
    count = int(context.extra.get(_PAUSE_COUNTER, 0)) + 1
    context.extra[_PAUSE_COUNTER] = count
    return count


def _prepare(state: State, wait_for_input: Any) -> tuple[type[BaseRunInput] | None, Keyset]:
    """The input class and keyset of a pause that waits for input (saved as the schema)."""
    if wait_for_input is None:
        return None, Keyset()
    input_cls = run_input_subclass_from_type(wait_for_input)
    keyset = keyset_from_paused_state(state)
    state.state_details.run_input_keyset = keyset
    return input_cls, keyset


def _answer(input_cls: type[BaseRunInput] | None, keyset: Keyset, run_id: uuid.UUID) -> Any:
    if input_cls is None:
        return None
    return input_cls._load(keyset, run_id, wait_seconds=RESPONSE_GRACE_SECONDS)


def _current_flow_run(verb: str) -> FlowRunContext:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError(f"Flow runs can only be {verb} from within a flow run.")
    return context


def _propose_pause(
    context: FlowRunContext, state: State, input_cls: type[BaseRunInput] | None, keyset: Keyset
) -> State | None:
    """Propose the pause; None if this pause already fired (the run was resumed before)."""
    run_id = uuid.UUID(str(context.flow_run.id))
    verb = "suspended" if state.name == "Suspended" else "paused"
    if input_cls is not None:
        input_cls._save(keyset, run_id)
    with client_scope() as client:
        result = client.pause_flow_run(run_id, state)
    current = result.state
    if result.status == "ABORT":
        raise RuntimeError(f"Flow run cannot be {verb}: {result.details}")
    if result.status == "REJECT":
        if current is not None and current.is_running():
            return None
        raise RuntimeError(f"Flow run cannot be {verb}: {result.details} (it is {current})")
    return current or state


def _pause(
    wait_for_input: Any = None,
    timeout: float | None = 3600,
    poll_interval: float = 10,
    key: str | None = None,
) -> Any:
    context = _current_flow_run("paused")
    run_id = uuid.UUID(str(context.flow_run.id))
    logger = get_run_logger(context=context)
    pause_key = key or str(_observed_flow_pauses(context))
    state = Paused(timeout_seconds=timeout, reschedule=False, pause_key=pause_key)
    input_cls, keyset = _prepare(state, wait_for_input)
    logger.info("Pausing flow, execution will continue when this flow run is resumed.")
    if _propose_pause(context, state, input_cls, keyset) is None:
        return _answer(input_cls, keyset, run_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    with client_scope() as client:
        while True:
            remaining = WAIT_SLICE_SECONDS if deadline is None else deadline - time.monotonic()
            wait = max(0.0, min(remaining, WAIT_SLICE_SECONDS))
            current = client.wait_for_flow_run_resume(run_id, timeout=wait)
            if _still_paused(current, pause_key):
                if remaining <= 0:
                    break
                continue
            assert current is not None
            if current.is_running():
                logger.info("Resuming flow run execution!")
                return _answer(input_cls, keyset, run_id)
            _stop_for(current)
    raise FlowPauseTimeout("Flow run was paused and never resumed.")


def _still_paused(state: State | None, pause_key: str) -> bool:
    return (
        state is not None
        and state.type is StateType.PAUSED
        and state.state_details.pause_key == pause_key
    )


def _stop_for(state: State) -> NoReturn:
    """A paused run that did not resume: end this execution the way its state says."""
    if state.type in (StateType.CANCELLING, StateType.CANCELLED):
        raise Abort(state.message or "The flow run was cancelled while paused.")
    if state.type is StateType.FAILED:
        raise FlowPauseTimeout(state.message or "Flow run was paused and never resumed.")
    raise RuntimeError(f"Flow run cannot continue: it became {state} while paused.")


def _suspend(
    wait_for_input: Any = None,
    timeout: float | None = None,
    key: str | None = None,
) -> Any:
    if TaskRunContext.get() is not None:
        raise RuntimeError("Cannot suspend task runs.")
    context = _current_flow_run("suspended")
    run_id = uuid.UUID(str(context.flow_run.id))
    pause_key = key or str(_observed_flow_pauses(context))
    state = Suspended(timeout_seconds=timeout, pause_key=pause_key)
    input_cls, keyset = _prepare(state, wait_for_input)
    accepted = _propose_pause(context, state, input_cls, keyset)
    if accepted is None:  # resumed earlier: this is the re-run
        return _answer(input_cls, keyset, run_id)
    get_run_logger(context=context).info(
        "Suspending flow run, execution will be rescheduled when this flow run is resumed."
    )
    raise Pause("the flow run is suspended until it is resumed", state=accepted)


def _resume(flow_run_id: uuid.UUID | str, run_input: Any = None) -> None:
    run_id = flow_run_id if isinstance(flow_run_id, uuid.UUID) else uuid.UUID(str(flow_run_id))
    if isinstance(run_input, BaseRunInput):
        run_input = run_input.model_dump(mode="json")
    with client_scope() as client:
        run = client.read_flow_run(run_id)
        if run.state is None or not run.state.is_paused():
            now = run.state.name if run.state is not None else "without a state"
            raise NotPausedError(f"Cannot resume flow run {run_id}: it isn't paused (it is {now})")
        result = client.resume_flow_run(run_id, run_input=run_input)
    if result.status != "ACCEPT":
        if result.state is not None and result.state.is_failed():
            raise FlowPauseTimeout("Flow run can no longer be resumed.")
        raise RuntimeError(f"Cannot resume this run: {result.details}")


@sync_compatible
def pause_flow_run(
    wait_for_input: Any = None,
    timeout: float | None = 3600,
    poll_interval: float = 10,
    key: str | None = None,
) -> Any:
    """Pause the current flow run and wait (blocked, not polling) until it is resumed.

    ``wait_for_input``: a ``RunInput`` subclass or a plain type (``str``, ``dict``...);
    the input given at resume is validated against it and returned. ``timeout``: seconds
    to wait (None: no limit); then ``FlowPauseTimeout`` fails the run. ``key``: a custom
    pause key (a key fires once per run). ``poll_interval`` is accepted for compatibility
    and unused."""
    return _pause(wait_for_input, timeout, poll_interval, key)


@sync_compatible
def suspend_flow_run(
    wait_for_input: Any = None,
    timeout: float | None = None,
    key: str | None = None,
) -> Any:
    """Suspend the current flow run (of a deployment): it ends its process now and runs
    again from the top once resumed, this call then returning the input given.

    ``timeout``: seconds after which it can no longer be resumed (default: none)."""
    return _suspend(wait_for_input, timeout, key)


@sync_compatible
def resume_flow_run(flow_run_id: uuid.UUID | str, run_input: Any = None) -> None:
    """Resume a paused or suspended flow run, giving ``run_input`` if it waits for input.

    ``NotPausedError`` if it is not paused; ``ValidationError`` (the run stays paused) if
    the input does not fit; ``FlowPauseTimeout`` if the pause timed out."""
    _resume(flow_run_id, run_input)


__all__ = ["pause_flow_run", "resume_flow_run", "suspend_flow_run"]
