"""Ships queued run logs to the store in batches, off the hot path.

One daemon thread per process takes records from a FIFO queue and writes them with
``get_client(sync_client=True).create_logs(...)``: a batch leaves when ``BATCH_SIZE``
records wait or ``BATCH_INTERVAL`` seconds after the first one arrived, or at once when
someone flushes.

- **Order**: one sender and FIFO batches, so a run's logs are stored in the order emitted.
- **flush_logs(timeout)** returns once every record queued before the call is stored
  (True), or after ``timeout`` seconds (False). The engine calls it when a flow ends.
- **Process exit**: an ``atexit`` hook flushes for up to ``EXIT_FLUSH_TIMEOUT`` seconds and
  says on stderr how many records, if any, could not be written.
- **Store unreachable**: one warning on stderr per outage; records stay queued and are
  retried with backoff. When ``MAX_PENDING`` records wait, new ones are dropped (the
  oldest are kept, so what is stored stays a prefix in order) and counted; the count goes to
  stderr once the store answers again, and at exit. A batch the store refuses (bad data)
  is dropped with a warning rather than retried forever.
- **fork()**: the child starts with an empty queue and its own thread.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import sys
import threading
import time
from collections import deque
from typing import Any

from prefect_lite.exceptions import StoreUnavailable, UserError

# (logger name, level, message, created, flow run id, task run id, extra)
PendingLog = tuple[str, int, str, float, Any, Any, "dict[str, Any] | None"]

BATCH_SIZE = 500
BATCH_INTERVAL = 0.05  # seconds
MAX_PENDING = 50_000
EXIT_FLUSH_TIMEOUT = 5.0  # seconds
_MAX_RETRY_DELAY = 2.0  # seconds


def _warn(message: str) -> None:
    try:
        sys.stderr.write(f"prefect_lite: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed at shutdown
        pass


class LogShipper:
    """The queue of run log records waiting for the store, and its sender thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[PendingLog] = deque()
        self._queued = 0  # records accepted since start
        self._settled = 0  # records stored, or refused by the store
        self._flushers = 0  # flush() calls waiting now
        self._flush_requests = 0  # flush() calls ever made
        self._dropped = 0  # dropped because MAX_PENDING were waiting; not reported yet
        self._failing = False
        self.failed_attempts = 0  # sends that found the store unreachable
        self._thread: threading.Thread | None = None
        self._starting = False
        self._send_lock = threading.Lock()  # one sender at a time: keeps batches in order
        self._client: Any = None
        self._client_settings: Any = None

    # -- producer side (any thread)
    def put(self, item: PendingLog) -> None:
        with self._cond:
            if len(self._pending) >= MAX_PENDING:
                self._dropped += 1
                if self._dropped == 1:
                    _warn(
                        f"{MAX_PENDING} run log records are waiting for the store; "
                        "dropping new ones until it catches up"
                    )
                return
            self._pending.append(item)
            self._queued += 1
            start = self._thread is None and not self._starting
            if start:
                self._starting = True
            waiting = len(self._pending)
            if waiting == 1 or waiting >= BATCH_SIZE:
                self._cond.notify_all()
        if start:  # outside the lock: starting imports modules, which could log
            self._start()

    def flush(self, timeout: float | None = 10.0, unreachable_timeout: float | None = None) -> bool:
        """Wait until every record queued so far is stored; False if ``timeout`` passed, or
        ``unreachable_timeout`` (when given) passed after an attempt found the store
        unreachable."""
        with self._cond:
            target = self._queued
            if self._settled >= target:
                return True
            if self._thread is None or not self._thread.is_alive():
                inline = True
            else:
                inline = False
                self._flushers += 1
                self._flush_requests += 1
                self._cond.notify_all()
        if inline:  # no sender thread (e.g. it could not start at shutdown): send here
            return self._drain_inline(target, timeout)
        with self._cond:
            try:
                if unreachable_timeout is None:
                    return self._cond.wait_for(lambda: self._settled >= target, timeout)
                deadline = None if timeout is None else time.monotonic() + timeout
                if not self._cond.wait_for(
                    lambda: self._settled >= target or self._failing, timeout
                ):
                    return False
                if self._settled >= target:
                    return True
                patience = unreachable_timeout
                if deadline is not None:
                    patience = min(patience, max(deadline - time.monotonic(), 0.0))
                return self._cond.wait_for(lambda: self._settled >= target, patience)
            finally:
                self._flushers -= 1

    # -- sender side
    def _start(self) -> None:
        # Import and build the client now: imports can fail at interpreter shutdown, when
        # the last records are sent (e.g. concurrent.futures registers an atexit hook).
        with contextlib.suppress(Exception):  # a real problem shows when sending
            self._client_for_now()
        thread = threading.Thread(target=self._run, name="prefect_lite-log-shipper", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: flush() sends inline
            return
        with self._cond:
            self._thread = thread

    def _run(self) -> None:
        delay = 0.0
        while True:
            self._wait_for_batch()
            if self._send():
                delay = 0.0
                continue
            delay = min(_MAX_RETRY_DELAY, delay * 2 or 0.1)
            self._back_off(delay)

    def _back_off(self, delay: float) -> None:
        """Wait before retrying; a new ``flush()`` call cuts the wait short (once)."""
        with self._cond:
            requests = self._flush_requests
            self._cond.wait_for(lambda: self._flush_requests != requests, delay)

    def _wait_for_batch(self) -> None:
        """Until records wait, then up to ``BATCH_INTERVAL`` more for a full batch."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending)
            if len(self._pending) < BATCH_SIZE and not self._flushers:
                self._cond.wait_for(
                    lambda: len(self._pending) >= BATCH_SIZE or self._flushers, BATCH_INTERVAL
                )

    def _drain_inline(self, target: int, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                if self._settled >= target:
                    return True
            if self._send():
                continue
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def _send(self) -> bool:
        """Write the head of the queue (up to ``BATCH_SIZE`` records); False if the store
        could not be reached (the records stay queued)."""
        with self._send_lock:
            with self._cond:
                batch = list(itertools.islice(self._pending, BATCH_SIZE))
            if not batch:
                return True
            try:
                self._client_for_now().create_logs(_to_logs(batch))
            except Exception as exc:
                if _retryable(exc):
                    self.failed_attempts += 1
                    if not self._failing:
                        with self._cond:
                            self._failing = True
                            self._cond.notify_all()
                        _warn(f"cannot write run logs to the store, will retry: {exc}")
                    return False
                # The store refused this data: retrying cannot help.
                _warn(f"the store refused {len(batch)} run log records, dropped: {exc}")
            with self._cond:
                for _ in batch:
                    self._pending.popleft()
                self._settled += len(batch)
                self._cond.notify_all()
                dropped, self._dropped = self._dropped, 0
            if self._failing:
                self._failing = False
            if dropped:
                _warn(f"{dropped} run log records were dropped while the store was behind")
            return True

    def _client_for_now(self) -> Any:
        """A client for the current settings (rebuilt when they change)."""
        from prefect_lite.client import get_client
        from prefect_lite.settings import get_settings

        settings = get_settings()
        if self._client is None or self._client_settings is not settings:
            if self._client is not None:
                self._client.close()
            self._client = get_client(sync_client=True)
            self._client_settings = settings
        return self._client

    def pending_count(self) -> int:
        with self._cond:
            return len(self._pending)

    def dropped_count(self) -> int:
        with self._cond:
            return self._dropped


def _retryable(exc: Exception) -> bool:
    """Refused data (a ``UserError`` other than ``StoreUnavailable``) cannot succeed later;
    anything else (unreachable store, server error) may."""
    return isinstance(exc, StoreUnavailable) or not isinstance(exc, UserError)


def _to_logs(batch: list[PendingLog]) -> list[Any]:
    from prefect_lite import _time
    from prefect_lite.schemas import Log  # loaded by _start(), via the client

    logs = []
    for name, level, message, created, flow_run_id, task_run_id, extra in batch:
        try:
            log = Log(
                name=name,
                level=level,
                message=message,
                timestamp=_time.from_timestamp(created),
                flow_run_id=flow_run_id,
                task_run_id=task_run_id,
                extra=extra or {},
            )
        except ValueError as exc:  # e.g. a run id that is not a UUID
            _warn(f"skipped a run log record that does not fit the store: {exc}")
            continue
        logs.append(log)
    return logs


_shipper: LogShipper | None = None
_shipper_lock = threading.Lock()
_atexit_registered = False


def get_shipper() -> LogShipper:
    """This process's shipper (created on first use)."""
    global _shipper, _atexit_registered
    shipper = _shipper
    if shipper is not None:
        return shipper
    with _shipper_lock:
        if _shipper is None:
            _shipper = LogShipper()
            if not _atexit_registered:
                atexit.register(_flush_at_exit)
                _atexit_registered = True
        return _shipper


UNREACHABLE_FLUSH_TIMEOUT = 1.0  # a flush while the store is unreachable waits this long


def flush_logs(timeout: float | None = 10.0) -> bool:
    """Block until every run log record emitted so far is in the store (False on timeout).

    While the store is unreachable the wait is cut to ``UNREACHABLE_FLUSH_TIMEOUT``: the
    records stay queued and are retried in the background and at exit, so a run does not
    end another ``timeout`` late."""
    shipper = _shipper
    return True if shipper is None else shipper.flush(timeout, UNREACHABLE_FLUSH_TIMEOUT)


def _flush_at_exit() -> None:
    shipper = _shipper
    if shipper is None:
        return
    if not shipper.flush(EXIT_FLUSH_TIMEOUT):
        _warn(
            f"{shipper.pending_count()} run log records could not be written to the store "
            f"within {EXIT_FLUSH_TIMEOUT:g} s of exit and are lost"
        )
    dropped = shipper.dropped_count()
    if dropped:
        _warn(f"{dropped} run log records were dropped while the store was behind")


def _forget_after_fork() -> None:
    global _shipper, _shipper_lock
    _shipper = None
    _shipper_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
