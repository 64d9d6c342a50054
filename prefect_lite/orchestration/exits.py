"""Settling a flow run whose process ended without reporting a final state.

A worker (or a runner serving its own deployments) calls ``settle_exit`` when the process
of a run it holds ended and the run is not final: segfault, ``os._exit``, out-of-memory
kill, SIGKILL after a cancel grace period. Under the holder's lease (a run another holder
took over is left alone):

- the run was being cancelled -> CANCELLED (its on_cancellation hooks could not run);
- it had not started (PENDING: its code could not even be loaded) -> CRASHED;
- otherwise -> AwaitingRetry if retries are left (``crash_outcome``), else CRASHED.

Subflow runs the process left unfinished end the same way. A CRASHED run of a pool's
deployment has its on_crashed hooks queued for a worker of that pool.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from prefect_lite import _time
from prefect_lite.orchestration.cancel import settle_subflows
from prefect_lite.schemas import FlowRun
from prefect_lite.states import AwaitingRetry, Cancelled, Crashed, State, StateType
from prefect_lite.storage import delivery, leases, runs

logger = logging.getLogger("prefect_lite.orchestration.exits")


def retry_delay(run: FlowRun) -> float:
    """The delay before the next attempt, from the run's policy (a list is per attempt)."""
    delay = run.empirical_policy.retry_delay
    if isinstance(delay, list):
        if not delay:
            return 0.0
        return float(delay[min(max(run.run_count - 1, 0), len(delay) - 1)])
    return float(delay or 0.0)


def crash_outcome(run: FlowRun, message: str) -> State:
    """AwaitingRetry while the run has retries left (attempts so far: ``run_count``), else
    Crashed."""
    retries = run.empirical_policy.retries
    if run.run_count <= retries:
        when = _time.now() + timedelta(seconds=retry_delay(run))
        note = f"{message} Retry {run.run_count} of {retries}."
        return AwaitingRetry(scheduled_time=when, message=note)
    return Crashed(message=message)


def settle_exit(
    flow_run_id: uuid.UUID | str,
    lease: str,
    how: str,
    cancelled: bool = False,
    reason: str | None = None,
) -> State | None:
    """Record the end of a run whose process ended ``how`` (e.g. "killed by SIGSEGV");
    ``cancelled``: its holder stopped it (``reason``: why, else the CANCELLING state's
    message). The state proposed, or None when the run was final already or is not
    ``lease``'s."""
    run: FlowRun | None = runs.read_run("flow", flow_run_id)
    if run is None or run.state is None:
        return None
    state = run.state
    if state.is_final() or state.type is StateType.SCHEDULED or state.name == "Suspended":
        if state.type in (StateType.CANCELLED, StateType.CRASHED):
            settle_subflows(run.id, state.type, f"Its parent flow run ended {state.name}.")
        return None
    if leases.lease_of(str(run.id)) != lease:
        return None
    if cancelled or state.type is StateType.CANCELLING:
        why = reason or state.message or "Cancelled."
        message = f"{why} (its process was stopped: {how}; on_cancellation hooks did not run)"
        outcome: State = Cancelled(message=message)
    else:
        message = f"The flow run's process ended ({how}) before the run reported a final state."
        if state.type is StateType.PENDING:
            outcome = Crashed(message=message + " It never started.")
        else:
            outcome = crash_outcome(run, message)
    proposal = runs.Proposal(state=outcome, lease=lease, force=True)
    if runs.propose("flow", run.id, proposal).status != "ACCEPT":
        return None
    logger.warning("Flow run %s (%s): %s -> %s", run.name, run.id, outcome.message, outcome.name)
    if outcome.type in (StateType.CANCELLED, StateType.CRASHED):
        settle_subflows(run.id, outcome.type, f"Its parent flow run ended {outcome.name}.")
    if outcome.type is StateType.CRASHED and run.work_pool_name and run.deployment_id:
        delivery.push_crash_hooks(run.work_pool_name, str(run.id))
    return outcome
