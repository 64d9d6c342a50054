"""The reaper: runs whose holder died or was cut off are settled, never while it may run.

A worker renews the lease of each run it holds every ``lease_seconds / 3``; the
scheduler service calls ``Reaper.tick(now)`` as a tick hook and runs ``Reaper.look`` in a
thread every ``fencing.WATCH_INTERVAL_SECONDS``. Two ways a lease is taken over
(atomically, and only while it is still the holder's: a late heartbeat then finds it gone),
following the fencing rule (``orchestration/fencing.py``):

- **gone holder** (``look``): a holder whose connections all closed (Redis's
  ``CLIENT LIST``; a dead process's sockets are closed by its kernel) for
  ``GONE_CONFIRM_SECONDS``: its runs are taken over at once, expired or not;
- **silent holder** (``tick``, every ``reaper_interval_seconds``): a lease that expired
  ``silent_takeover_delay`` ago (its holder has fenced itself by then), or that expired
  while its holder has no connection.

Never during the grace period after an outage the reaper saw (the store restarted, or
its own contact lapsed): holders renew then. What a take-over proposes, with the version
it read:

- RUNNING or PAUSED -> AwaitingRetry (now + the retry delay) while the run has retries
  left, else CRASHED; a CRASHED run's on_crashed hooks are queued for a worker of its
  pool (hooks are user code: they run in a process that can load the flow, never here);
  its subflow runs that did not end crash too;
- PENDING (claimed, never started) -> Scheduled again, admitted anew;
- CANCELLING -> CANCELLED.

Bounds: kill -9 of a worker -> settled within ``GONE_CONFIRM_SECONDS`` + two looks (about
2 s); a cut-off worker -> its last renewal + ``fence_after`` + ``FENCE_MARGIN_SECONDS`` +
one pass (43 s with the defaults). The tick also marks workers OFFLINE whose heartbeat
stopped, and admits waiting runs whose slots a release freed (when no worker's admitter
did already).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from prefect_lite import _time
from prefect_lite.exceptions import StoreUnavailable
from prefect_lite.orchestration import admission, fencing
from prefect_lite.orchestration.cancel import settle_subflows
from prefect_lite.orchestration.exits import crash_outcome
from prefect_lite.schemas import FlowRun
from prefect_lite.settings import get_settings
from prefect_lite.states import Cancelled, Crashed, Scheduled, StateType
from prefect_lite.storage import delivery, leases, liveness, pools, runs

logger = logging.getLogger("prefect_lite.orchestration.reaper")

BATCH = 500  # expired leases settled per pass
LOST = (
    "Crash detected: the worker running this flow run stopped renewing its lease "
    "(its process or machine is gone)."
)
GONE = (
    "Crash detected: the worker running this flow run stopped renewing its lease "
    "(its process is gone: its connections to Redis closed)."
)
SILENT = (
    "Crash detected: the worker running this flow run stopped renewing its lease and "
    "did not come back within the fencing window (its machine is gone or cut off)."
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
        self.store = fencing.StoreWatch()
        self._lock = threading.Lock()
        self._last_look = 0.0  # monotonic
        self._seen: set[str] = set()  # owners connected at the last look
        self._absent_since: dict[str, float] = {}  # owner -> when first seen missing
        self._present: set[str] | None = None

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
        due = at >= self._next_pass
        if due or time.monotonic() - self._last_look >= fencing.WATCH_INTERVAL_SECONDS:
            self.look(at, report)  # a pass always checks the store's identity first
        if not due:
            return report
        self._next_pass = at + self.interval
        report.ran = True
        if self.store.may_take_over(at):
            present = self._present
            delay = fencing.silent_takeover_delay()
            for run_id, expiry in leases.expired_leases(at, BATCH):
                self._reap_expired(run_id, expiry, at, delay, present, report)
        report.workers_offline = mark_silent_workers_offline(at)
        return report

    def watch(self, stop: threading.Event) -> None:
        """``look`` every ``WATCH_INTERVAL_SECONDS`` until ``stop`` is set (a thread)."""
        while not stop.wait(fencing.WATCH_INTERVAL_SECONDS):
            try:
                self.look(_time.timestamp())
            except StoreUnavailable:
                pass  # the scheduler loop says so, once
            except Exception:
                logger.exception("the reaper's look at the store failed")

    def look(self, at: float, report: ReapReport | None = None) -> None:
        """Note the store's identity and who is connected; settle gone holders' runs."""
        with self._lock:
            self._last_look = time.monotonic()
            try:
                identity = liveness.store_identity()
                present = liveness.connected_owners()
            except StoreUnavailable:
                self.store.lost()
                self._present = None
                raise
            if self.store.observe(identity.run_id, identity.started_at, at):
                logger.warning(
                    "The store is reachable again: no lease is taken over for %g s",
                    fencing.grace_seconds(),
                )
                self._seen, self._absent_since = set(), {}
            self._present = present
            if present is None:
                return
            for owner in self._seen - present:
                self._absent_since.setdefault(owner, time.monotonic())
            for owner in present:
                self._absent_since.pop(owner, None)
            self._seen = present | set(self._absent_since)
            if not self.store.may_take_over(at):
                return
            confirmed = time.monotonic() - fencing.GONE_CONFIRM_SECONDS
            for owner, since in list(self._absent_since.items()):
                if since <= confirmed:
                    del self._absent_since[owner]
                    self._seen.discard(owner)
                    self._settle_owner(owner, at, report or ReapReport())

    def _settle_owner(self, owner: str, at: float, report: ReapReport) -> None:
        for run_id in leases.leases_of_owner(owner):
            holder = leases.lease_of(run_id)
            if holder is not None and leases.owner_of(holder) == owner:
                self.reap_one(run_id, at, report, holder=holder, why=GONE)

    def _reap_expired(
        self,
        run_id: str,
        expiry: float,
        at: float,
        delay: float,
        present: set[str] | None,
        report: ReapReport,
    ) -> None:
        holder, state_type = leases.holder_and_type(run_id)
        owner = leases.owner_of(holder)
        if owner is not None and present is not None and owner not in present:
            self.reap_one(run_id, at, report, holder=holder, why=GONE)
        elif state_type == StateType.CANCELLING.value:
            self.reap_one(run_id, at, report)  # it ends Cancelled: nothing runs it again
        elif at >= expiry + delay:
            self.reap_one(run_id, at - delay, report, why=SILENT if owner else LOST)

    def reap_one(
        self,
        run_id: str,
        at: float,
        report: ReapReport,
        holder: str | None = None,
        why: str = LOST,
    ) -> None:
        """Take the run's lease over (from ``holder``, else if it expired by ``at``) and
        settle the run."""
        token = f"reaper-{uuid.uuid4().hex}"
        if holder is not None:
            taken = leases.take_lease_from(run_id, holder, token)
        else:
            taken = leases.take_expired_lease(run_id, at, token)
        if taken is None:
            return
        version, state_type = taken
        run: FlowRun | None = runs.read_run("flow", run_id)
        if run is None:
            return
        now = _time.timestamp()
        if state_type == StateType.PENDING.value:
            leases.requeue_unstarted(run_id)
            state = Scheduled(
                scheduled_time=_time.from_timestamp(now),
                message="Rescheduled: the worker that claimed it was lost before it started.",
            )
            bucket = report.rescheduled
        elif state_type == StateType.CANCELLING.value:
            state, bucket = Cancelled(message=f"{why} It was being cancelled."), report.cancelled
        elif state_type in (StateType.RUNNING.value, StateType.PAUSED.value):
            # A run without a deployment (a local one) is never run again: no retry.
            state = crash_outcome(run, why) if run.deployment_id else Crashed(message=why)
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
            settle_subflows(run_id, state.type, f"Its parent flow run ended {state.name}: {why}")
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
