"""A worker: pull flow runs from a work pool and run each in its own process.

The loop, as named steps: ``register`` (check the pool, start the zygote and warm
children, record itself ONLINE) -> ``claim`` (pop-and-claim the next run from the pool's
queues in priority order: PENDING under a fresh lease) -> ``start`` (hand it to a warm
child; the child proposes RUNNING and runs the flow) -> ``monitor`` (children report or
exit; a heartbeat renews the leases) -> ``report`` (a child that died without a final
state is CRASHED, or AwaitingRetry when retries are left). When nothing is queued the loop
blocks on the queues' bells (no polling). Tests drive ``work_once()`` directly.

Side threads: ``heartbeat`` (leases, the worker record, CANCELLING noticed the slow way),
``cancellation`` (pub/sub: cancel requests within milliseconds), the admitter (released
slots admit waiting runs at once) and the monitor. ``shutdown`` handles signals.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field

import orjson

from prefect_lite import _time
from prefect_lite.deployments.policy import ExecutionPolicy
from prefect_lite.exceptions import (
    ObjectAlreadyExists,
    ObjectNotFound,
    StoreUnavailable,
    ValidationError,
)
from prefect_lite.orchestration import admission
from prefect_lite.orchestration.outage_log import OutageLog
from prefect_lite.schemas import Worker as WorkerRecord
from prefect_lite.settings import get_settings
from prefect_lite.states import Pending
from prefect_lite.storage import delivery, leases, pools
from prefect_lite.storage.connection import process_owner
from workers.children import ChildPool
from workers.process import Child
from workers.reporting import report_exit

logger = logging.getLogger("prefect_lite.workers")

IDLE_WAIT_SECONDS = 1.0  # longest block on the bells before looking at the stop flag again
RETRY_PAUSE_SECONDS = 1.0  # after Redis went away


@dataclass
class WorkerOptions:
    pool: str
    queues: list[str] = field(default_factory=list)  # empty: every queue of the pool
    name: str | None = None
    limit: int | None = None  # runs at once
    spares: int = 1  # warm children kept ready
    runs_per_process: int = 100  # a child retires after this many runs (1: fresh each run)
    cancel_grace_seconds: float = 1.0  # SIGTERM -> SIGKILL for a cancelled run
    shutdown_grace_seconds: float = 30.0  # SIGTERM: wait this long for running runs
    policy: ExecutionPolicy | None = None  # what runs may execute (None: the settings)


class Worker:
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.policy = options.policy or ExecutionPolicy.from_settings()
        self.name = options.name or f"{socket.gethostname()}-{os.getpid()}"
        self.queues: list[str] = list(options.queues)
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # no new claims
        self.stopped = threading.Event()  # threads end
        self.started = _time.now()
        self.owner = process_owner()  # names its leases and its connections
        self.outage = OutageLog(logger, f"worker {self.name!r}")
        self.children: ChildPool | None = None
        self.aborting = False  # exiting at once: ended runs are not reported one by one
        self._capacity = threading.Semaphore(options.limit) if options.limit else None
        self._threads: list[threading.Thread] = []

    @property
    def lease_seconds(self) -> float:
        return get_settings().lease_seconds

    # ------------------------------------------------------------------ register
    def register(self) -> None:
        """Check the pool and queues, start the zygote and warm children, go ONLINE."""
        self.ensure_pool()
        self.refresh_queues()
        from workers.cancellation import CancelListener, enforce_deadlines, next_deadline
        from workers.fencing import Fence
        from workers.heartbeat import Heartbeat

        self.children = ChildPool(
            self.options.spares,
            on_finished=self._finished,
            next_deadline=lambda: next_deadline(self),
            on_deadline=lambda: enforce_deadlines(self),
        )
        self.children.start()
        self.save_record("ONLINE")
        for target, name in (
            (Heartbeat(self).run, "heartbeat"),
            (Fence(self).run, "fence"),
            (CancelListener(self).run, "cancel-listener"),
            (self._admit_loop, "admitter"),
        ):
            thread = threading.Thread(target=target, name=f"worker-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info(
            "Worker %r started on pool %r, queues %s", self.name, self.options.pool, self.queues
        )
        if self.policy.allow_custom_steps:
            logger.warning("Pull steps may call any importable function (custom steps allowed)")

    def ensure_pool(self) -> None:
        """Create the pool (type ``process``, with its ``default`` queue) when it is missing,
        as Prefect's workers do. Goes through the in-process client, so the name is checked
        like any other; another worker creating it at the same moment is fine."""
        if pools.get_pool(self.options.pool) is not None:
            return
        others = sorted(set(self.options.queues) - {"default"})
        if others:
            raise ObjectNotFound(
                f"no work pool named {self.options.pool!r} to serve queue {others[0]!r}: a worker "
                "creates a missing pool with only its 'default' queue; create both first "
                f"(`prefect-lite work-pool create {self.options.pool}`, then "
                f"`prefect-lite work-queue create {others[0]} --pool {self.options.pool}`)"
            )
        from prefect_lite.client.orchestration import SyncPrefectClient
        from prefect_lite.client.transport import LocalTransport

        with SyncPrefectClient(LocalTransport()) as client:
            try:
                client.create_work_pool(self.options.pool, type="process")
            except ObjectAlreadyExists:
                return
        logger.info(
            "Work pool %r not found: created it (type 'process', queue 'default')",
            self.options.pool,
        )

    def refresh_queues(self) -> None:
        """The queues to serve, in priority order (all of the pool's unless named)."""
        ordered = [q.name for q in pools.list_queues(self.options.pool)]
        if not self.options.queues:
            self.queues = ordered
            return
        unknown = sorted(set(self.options.queues) - set(ordered))
        if unknown:
            raise ObjectNotFound(
                f"work pool {self.options.pool!r} has no queue {unknown[0]!r} "
                f"(its queues: {', '.join(ordered)})"
            )
        self.queues = [q for q in ordered if q in self.options.queues]

    def save_record(self, status: str) -> None:
        pools.save_worker(
            WorkerRecord(
                name=self.name,
                work_pool_name=self.options.pool,
                work_queue_names=list(self.options.queues),
                host=socket.gethostname(),
                pid=os.getpid(),
                started=self.started,
                last_heartbeat_time=_time.now(),
                status="ONLINE" if status == "ONLINE" else "OFFLINE",
                limit=self.options.limit,
                running=len(self.active_runs()),
            )
        )

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        """Register, then claim and start runs until ``stopping`` is set."""
        self.register()
        while not self.stopping.is_set():
            try:
                self.work_once(IDLE_WAIT_SECONDS)
                self.outage.ok()
            except StoreUnavailable as exc:
                self.outage.failed(exc)
                self.stopping.wait(RETRY_PAUSE_SECONDS)

    def work_once(self, wait_seconds: float = 0.0) -> str | None:
        """Claim and start one run if one is queued (its id); else block up to
        ``wait_seconds`` on the bells (and run crash hooks that arrive)."""
        if not self._take_capacity(wait_seconds):
            return None
        started = False
        try:
            claimed = self.claim()
            if claimed is not None:
                self.start(claimed)
                started = True
                return claimed.run_id
            hooks_for = delivery.pop_crash_hooks(self.options.pool)
            if hooks_for is None and wait_seconds > 0:
                hooks_for = delivery.wait_for_work(self.options.pool, self.queues, wait_seconds)
            if hooks_for:
                self.start_hooks(hooks_for)
                started = True
            return None
        finally:
            if not started:
                self._give_capacity()

    def claim(self) -> delivery.Claimed | None:
        """PENDING under a new lease for the next queued run, or None."""
        now = _time.timestamp()
        pending = orjson.dumps(Pending().to_record()).decode()
        return delivery.claim(
            self.options.pool,
            self.queues,
            leases.new_token(self.owner),
            now + self.lease_seconds,
            pending,
            now,
        )

    def start(self, claimed: delivery.Claimed) -> Child:
        """Hand the claimed run to a warm child."""
        assert self.children is not None
        child = self.children.take()
        child = self.children.assign(
            claimed.run_id,
            child,
            "run",
            claimed.run_id,
            lease=claimed.lease,
            lease_seconds=self.lease_seconds,
            worker=self.name,
            owner=self.owner,
            recycle_after=self.options.runs_per_process,
            policy=self.policy,
        )
        logger.info("Worker %r started flow run %s (pid %s)", self.name, claimed.run_id, child.pid)
        return child

    def start_hooks(self, run_id: str) -> None:
        """Run a crashed run's on_crashed hooks in a child (which then retires)."""
        assert self.children is not None
        child = self.children.take()
        self.children.assign(f"hooks:{run_id}", child, "hooks", run_id, policy=self.policy)

    def _take_capacity(self, wait_seconds: float) -> bool:
        if self._capacity is None:
            return True
        if wait_seconds > 0:
            return self._capacity.acquire(timeout=wait_seconds)
        return self._capacity.acquire(blocking=False)

    def _give_capacity(self) -> None:
        if self._capacity is not None:
            self._capacity.release()

    def _finished(self, child: Child) -> None:
        """A child's run (or hooks) ended: record what needs recording, free the capacity."""
        try:
            if not self.aborting:
                report_exit(self, child)
        finally:
            self._give_capacity()

    def wake_monitor(self) -> None:
        if self.children is not None:
            self.children.wake()

    def running_child(self, run_id: str) -> Child | None:
        return self.children.find(run_id) if self.children is not None else None

    # ------------------------------------------------------------------ admitter
    def _admit_loop(self) -> None:
        """Released slots admit the pool's waiting runs at once (no scheduler tick needed)."""
        while not self.stopped.is_set():
            try:
                released = delivery.pop_admit_notices(timeout=IDLE_WAIT_SECONDS)
                if released:
                    admission.admit_released(released)
            except StoreUnavailable:
                self.stopped.wait(RETRY_PAUSE_SECONDS)
            except Exception:
                logger.exception("admitting waiting runs failed")
                self.stopped.wait(RETRY_PAUSE_SECONDS)

    # ------------------------------------------------------------------ stop
    def active_runs(self) -> list[Child]:
        """Children running a flow run now."""
        if self.children is None:
            return []
        return [c for c in self.children.busy_children() if c.kind == "run" and c.done is None]

    def close(self, wait: bool = True) -> None:
        """Stop the threads and the children, go OFFLINE (running children are not waited;
        ``wait=False``: do not wait for the threads either)."""
        self.stopping.set()
        self.stopped.set()
        for thread in self._threads if wait else []:
            thread.join(timeout=5.0)
        if self.children is not None:
            self.children.close(wait_seconds=5.0 if wait else 0.5)
        try:
            self.save_record("OFFLINE")
        except (StoreUnavailable, ValidationError):
            pass
        logger.info("Worker %r stopped", self.name)
