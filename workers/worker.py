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
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

import orjson

from prefect_lite import _time
from prefect_lite.exceptions import ObjectNotFound, StoreUnavailable, ValidationError
from prefect_lite.orchestration import admission
from prefect_lite.schemas import Worker as WorkerRecord
from prefect_lite.settings import get_settings
from prefect_lite.states import Pending
from prefect_lite.storage import delivery, pools
from workers.process import Child, Zygote
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
    cancel_grace_seconds: float = 1.0  # SIGTERM -> SIGKILL for a cancelled run
    shutdown_grace_seconds: float = 30.0  # SIGTERM: wait this long for running runs


class Worker:
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.name = options.name or f"{socket.gethostname()}-{os.getpid()}"
        self.queues: list[str] = list(options.queues)
        self.running: dict[str, Child] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # no new claims
        self.stopped = threading.Event()  # threads end
        self.started = _time.now()
        self.zygote: Zygote | None = None
        self._capacity = threading.Semaphore(options.limit) if options.limit else None
        self._wake_monitor = _Wakeup()
        self._threads: list[threading.Thread] = []

    @property
    def lease_seconds(self) -> float:
        return get_settings().lease_seconds

    # ------------------------------------------------------------------ register
    def register(self) -> None:
        """Check the pool and queues, start the zygote and warm children, go ONLINE."""
        pool = pools.get_pool(self.options.pool)
        if pool is None:
            known = ", ".join(p.name for p in pools.list_pools(limit=20)) or "none yet"
            raise ObjectNotFound(
                f"no work pool named {self.options.pool!r} (pools: {known}); create it with "
                f"`prefect-lite work-pool create {self.options.pool}`"
            )
        self.refresh_queues()
        self.zygote = Zygote()
        for _ in range(max(1, self.options.spares)):
            self.zygote.request_fork()
        self.save_record("ONLINE")
        from workers.cancellation import CancelListener
        from workers.heartbeat import Heartbeat

        for target, name in (
            (Heartbeat(self).run, "heartbeat"),
            (CancelListener(self).run, "cancel-listener"),
            (self._admit_loop, "admitter"),
            (self._monitor_loop, "monitor"),
        ):
            thread = threading.Thread(target=target, name=f"worker-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info(
            "Worker %r started on pool %r, queues %s", self.name, self.options.pool, self.queues
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
        with self.lock:
            active = len([c for c in self.running.values() if c.kind == "run"])
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
                running=active,
            )
        )

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        """Register, then claim and start runs until ``stopping`` is set."""
        self.register()
        while not self.stopping.is_set():
            try:
                self.work_once(IDLE_WAIT_SECONDS)
            except StoreUnavailable as exc:
                logger.warning("Redis unavailable, retrying: %s", exc)
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
            uuid.uuid4().hex,
            now + self.lease_seconds,
            pending,
            now,
        )

    def start(self, claimed: delivery.Claimed) -> Child:
        """Hand the claimed run to a warm child."""
        child = self._take_spare()
        child.lease = claimed.lease
        child.assigned_at = _time.monotonic()
        with self.lock:
            self.running[claimed.run_id] = child
        child.assign(
            "run",
            claimed.run_id,
            lease=claimed.lease,
            lease_seconds=self.lease_seconds,
            worker=self.name,
        )
        self._wake_monitor.set()
        logger.info("Worker %r started flow run %s (pid %s)", self.name, claimed.run_id, child.pid)
        return child

    def start_hooks(self, run_id: str) -> None:
        """Run a crashed run's on_crashed hooks in a fresh child."""
        child = self._take_spare()
        with self.lock:
            self.running[f"hooks:{run_id}"] = child
        child.assign("hooks", run_id)
        self._wake_monitor.set()

    def _take_spare(self) -> Child:
        """A warm child (the zygote forked it ahead of time); another is asked for."""
        assert self.zygote is not None
        self.zygote.request_fork()
        return self.zygote.take_forked(timeout=30.0)

    def _take_capacity(self, wait_seconds: float) -> bool:
        if self._capacity is None:
            return True
        if wait_seconds > 0:
            return self._capacity.acquire(timeout=wait_seconds)
        return self._capacity.acquire(blocking=False)

    def _give_capacity(self) -> None:
        if self._capacity is not None:
            self._capacity.release()

    # ------------------------------------------------------------------ monitor, report
    def _monitor_loop(self) -> None:
        """Wait on the busy children's channels; a report or an exit ends their run."""
        while not self.stopped.is_set():
            with self.lock:
                busy: dict[Any, Child] = {c.channel: c for c in self.running.values()}
            deadline = self._next_deadline()
            ready = wait([self._wake_monitor.reader, *busy], timeout=deadline)
            for conn in ready:
                if conn is self._wake_monitor.reader:
                    self._wake_monitor.clear()
                    continue
                self._read_child(busy[conn])
            self._enforce_cancel_deadlines()

    def _read_child(self, child: Child) -> None:
        try:
            message = child.channel.recv()
        except (EOFError, OSError):
            self._finish(child)
            return
        if message and message[0] == "done":
            child.done = tuple(message[1:])

    def _finish(self, child: Child) -> None:
        child.channel.close()
        assert self.zygote is not None
        if child.done is None:
            child.exit_code = self.zygote.wait_exit(child.pid, timeout=2.0)
        else:
            self.zygote.exit_codes.pop(child.pid, None)
        key = child.run_id if child.kind == "run" else f"hooks:{child.run_id}"
        with self.lock:
            self.running.pop(str(key), None)
        try:
            report_exit(self, child)
        except Exception:
            logger.exception("Could not report the end of flow run %s", child.run_id)
        finally:
            self._give_capacity()

    def wake_monitor(self) -> None:
        self._wake_monitor.set()

    def _next_deadline(self) -> float | None:
        from workers.cancellation import next_deadline

        return next_deadline(self)

    def _enforce_cancel_deadlines(self) -> None:
        from workers.cancellation import enforce_deadlines

        enforce_deadlines(self)

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
        with self.lock:
            return [c for c in self.running.values() if c.kind == "run"]

    def close(self, wait: bool = True) -> None:
        """Stop the threads and the zygote, go OFFLINE (running children are not waited;
        ``wait=False``: do not wait for the threads either)."""
        self.stopping.set()
        self.stopped.set()
        self._wake_monitor.set()
        for thread in self._threads if wait else []:
            thread.join(timeout=5.0)
        if self.zygote is not None:
            self.zygote.close(timeout=5.0 if wait else 0.5)
        try:
            self.save_record("OFFLINE")
        except (StoreUnavailable, ValidationError):
            pass
        logger.info("Worker %r stopped", self.name)


class _Wakeup:
    """A pipe the monitor also waits on, so new children are watched at once."""

    def __init__(self) -> None:
        import multiprocessing

        self.reader, self._writer = multiprocessing.Pipe(duplex=False)
        self._flag = threading.Event()

    def set(self) -> None:
        if not self._flag.is_set():
            self._flag.set()
            self._writer.send_bytes(b"1")

    def clear(self) -> None:
        self._flag.clear()
        while self.reader.poll():
            self.reader.recv_bytes()
