"""What a worker records when one of its children ends.

A child that ran its flow run reports the final state itself (through the engine) and
exits; nothing is left to do but settle subflow runs of a cancelled or crashed run. A child
that ended without a final state while the run's lease is still this worker's crashed:
segfault, ``os._exit``, out-of-memory kill, or SIGKILL after a cancel grace period. Then:

- the run was being cancelled -> CANCELLED (its on_cancellation hooks could not run);
- it had not started (PENDING: the code could not even be loaded) -> CRASHED;
- otherwise -> AwaitingRetry if retries are left, else CRASHED, whose on_crashed hooks a
  worker of the pool then runs in a fresh process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prefect_lite.orchestration.cancel import settle_subflows
from prefect_lite.orchestration.reaper import crash_outcome
from prefect_lite.schemas import FlowRun
from prefect_lite.states import Cancelled, Crashed, State, StateType
from prefect_lite.storage import delivery, runs
from workers.process import Child, describe_exit

if TYPE_CHECKING:
    from workers.worker import Worker

logger = logging.getLogger("prefect_lite.workers")


def report_exit(worker: Worker, child: Child) -> None:
    if child.kind == "hooks" or child.run_id is None:
        logger.info("on_crashed hooks of flow run %s ran (pid %s)", child.run_id, child.pid)
        return
    run: FlowRun | None = runs.read_run("flow", child.run_id)
    if run is None or run.state is None:
        return
    state = run.state
    if state.is_final() or state.type is StateType.SCHEDULED or state.name == "Suspended":
        if state.type in (StateType.CANCELLED, StateType.CRASHED):
            settle_subflows(run.id, state.type, f"Its parent flow run ended {state.name}.")
        logger.info("Flow run %s (%s) ended %s", run.name, run.id, state.name)
        return
    if delivery.lease_of(str(run.id)) != child.lease:
        logger.info("Flow run %s is no longer this worker's; not reporting it", run.id)
        return
    how = describe_exit(child.exit_code)
    if child.cancel_sent_at is not None or state.type is StateType.CANCELLING:
        reason = child.cancel_reason or state.message or "Cancelled."
        message = f"{reason} (its process was stopped: {how}; on_cancellation hooks did not run)"
        _propose(child, run, Cancelled(message=message))
        settle_subflows(run.id, StateType.CANCELLED, f"Its parent flow run was cancelled: {reason}")
        logger.info("Flow run %s cancelled (%s)", run.id, how)
        return
    message = f"The flow run's process ended ({how}) before the run reported a final state."
    if state.type is StateType.PENDING:
        outcome = Crashed(message=message + " It never started.")
    else:
        outcome = crash_outcome(run, message)
    answer = _propose(child, run, outcome)
    logger.warning("Flow run %s crashed: %s -> %s", run.id, message, outcome.name)
    if answer and outcome.type is StateType.CRASHED:
        settle_subflows(run.id, StateType.CRASHED, f"Its parent flow run crashed: {message}")
        if run.work_pool_name and run.deployment_id:
            delivery.push_crash_hooks(run.work_pool_name, str(run.id))


def _propose(child: Child, run: FlowRun, state: State) -> bool:
    proposal = runs.Proposal(state=state, lease=child.lease, force=True)
    return runs.propose("flow", run.id, proposal).status == "ACCEPT"
