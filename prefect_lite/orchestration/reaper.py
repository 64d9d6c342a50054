"""The reaper: runs whose lease expired (their worker died) are settled within a bound.

A worker renews the lease of each run it holds every ``lease_seconds / 3``. When a worker
dies (kill -9, machine lost) its leases expire; the scheduler service calls
``Reaper.tick(now)`` as a tick hook and, every ``reaper_interval_seconds``, takes over
each expired lease (atomically, and only if it is still expired: a late heartbeat then
finds it gone) and proposes, with the version it read:

- RUNNING or PAUSED -> AwaitingRetry (now + the retry delay) while the run has retries
  left, else CRASHED; a CRASHED run's on_crashed hooks are queued for a worker of its
  pool (hooks are user code: they run in a process that can load the flow, never here);
  its subflow runs that did not end crash too;
- PENDING (claimed, never started) -> Scheduled again, admitted anew;
- CANCELLING -> CANCELLED.

The bound from kill -9 to the new state: ``lease_seconds`` (expiry) +
``reaper_interval_seconds`` (the next pass) + one scheduler loop (at most 1 s): 6 + 2 + 1
= 9 s with the defaults. The tick also marks workers OFFLINE whose heartbeat stopped, and
admits waiting runs whose slots a release freed (when no worker's admitter did already).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from prefect_lite import _time
from prefect_lite.orchestration import admission
from prefect_lite.orchestration.cancel import settle_subflows
from prefect_lite.orchestration.exits import crash_outcome
from prefect_lite.schemas import FlowRun
from prefect_lite.settings import get_settings
from prefect_lite.states import Cancelled, Scheduled, StateType
from prefect_lite.storage import delivery, leases, pools, runs

logger = logging.getLogger("prefect_lite.orchestration.reaper")

BATCH = 500  # expired leases settled per pass
LOST = (
    "Crash detected: the worker running this flow run stopped renewing its lease "
    "(its process or machine is gone)."
)


@dataclass
class ReapReport:
    ran: bool = False
    crashed: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    workers_offline: list[str] = field(default_factory=list)
    admitted: int = 0


class Reaper:
    """One reaper (any number may run: every step re-checks atomically)."""

    def __init__(self, interval_seconds: float | None = None) -> None:
        self.interval_seconds = interval_seconds
        self._next_pass = 0.0

    @property
    def interval(self) -> float:
        configured = self.interval_seconds
        return get_settings().reaper_interval_seconds if configured is None else configured

    def tick(self, now: datetime | None = None) -> ReapReport:
        """Admit after releases every tick; reap and check workers every interval."""
        at = (now or _time.now()).timestamp()
        report = ReapReport()
        released = delivery.pop_admit_notices(None)
        if released:
            report.admitted = admission.admit_released(released)
        if at < self._next_pass:
            return report
        self._next_pass = at + self.interval
        report.ran = True
        for run_id in leases.expired_leases(at, BATCH):
            self.reap_one(run_id, at, report)
        report.workers_offline = mark_silent_workers_offline(at)
        return report

    def reap_one(self, run_id: str, at: float, report: ReapReport) -> None:
        token = f"reaper-{uuid.uuid4().hex}"
        taken = leases.take_expired_lease(run_id, at, token)
        if taken is None:
            return
        version, state_type = taken
        run: FlowRun | None = runs.read_run("flow", run_id)
        if run is None:
            return
        if state_type == StateType.PENDING.value:
            leases.requeue_unstarted(run_id)
            state = Scheduled(
                scheduled_time=_time.from_timestamp(at),
                message="Rescheduled: the worker that claimed it was lost before it started.",
            )
            bucket = report.rescheduled
        elif state_type == StateType.CANCELLING.value:
            state, bucket = Cancelled(message=f"{LOST} It was being cancelled."), report.cancelled
        elif state_type in (StateType.RUNNING.value, StateType.PAUSED.value):
            state = crash_outcome(run, LOST)
            bucket = report.crashed if state.type is StateType.CRASHED else report.retrying
        else:
            return
        proposal = runs.Proposal(state=state, expected_version=version, lease=token)
        answer = runs.propose("flow", run_id, proposal)
        if answer.status != "ACCEPT":
            return  # it changed meanwhile (it finished): its own outcome stands
        bucket.append(run_id)
        logger.warning("Flow run %s (%s): %s -> %s", run.name, run_id, state.message, state.name)
        if state.type in (StateType.CRASHED, StateType.CANCELLED):
            settle_subflows(run_id, state.type, f"Its parent flow run ended {state.name}: {LOST}")
        if state.type is StateType.CRASHED and run.work_pool_name and run.deployment_id:
            delivery.push_crash_hooks(run.work_pool_name, run_id)


def mark_silent_workers_offline(at: float) -> list[str]:
    """Workers whose heartbeat is older than two leases are OFFLINE; their names."""
    cutoff = at - 2 * get_settings().lease_seconds
    marked = []
    for worker in pools.list_workers():
        if worker.status == "ONLINE" and worker.last_heartbeat_time.timestamp() < cutoff:
            pools.save_worker(worker.model_copy(update={"status": "OFFLINE"}))
            marked.append(f"{worker.work_pool_name}/{worker.name}")
    return marked
