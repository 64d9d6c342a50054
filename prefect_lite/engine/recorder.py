"""The background writer of task run changes.

Task runs are the hot path: a flow of a thousand trivial tasks must not pay a Redis round
trip per state. The engine hands each change (create with a first state, or propose a
state) to ``record()``, which only appends to a queue. One daemon thread takes whatever
has accumulated and sends it with ``client.apply_task_run_rows`` (one pipeline per batch),
in the order it was queued: changes are never reordered, so a run's history is exact.

``flush()`` waits until everything queued before the call has been sent; the flow engine
calls it before a flow run's final state, and an ``atexit`` hook calls it at process exit.
A batch that cannot be written because the store is unreachable is retried for up to
``settings.store_outage_seconds`` (a Redis restart), then logged and dropped, so
``flush()`` never hangs on a dead store.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import threading
import uuid
from typing import Any

from prefect_lite.engine import outage
from prefect_lite.states import State

logger = logging.getLogger("prefect_lite.engine.recorder")

MAX_BATCH = 300  # changes per script call: small batches keep the wait at flush() short
FLUSH_TIMEOUT_SECONDS = 30.0
IDLE_POLL_SECONDS = 1.0

# (client, op, task_run_id, state, task_run or None, force)
Change = tuple[Any, str, uuid.UUID, State, Any, bool]


class TaskRunRecorder:
    """A queue of task run changes and the thread that writes them in batches."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._queue: collections.deque[Change] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._progress = threading.Condition()
        self._queued = 0
        self._done = 0
        self._idle = True
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- producer side (hot path)
    def record(self, change: Change) -> None:
        """Queue one change; never blocks on I/O."""
        with self._lock:
            self._queue.append(change)
            self._queued += 1
        if self._thread is None:
            self._start()
        if self._idle:
            self._wake.set()

    def flush(self, timeout: float | None = FLUSH_TIMEOUT_SECONDS) -> bool:
        """Wait until every change queued before this call is written (or dropped).

        Returns False if the wait timed out. Called from the writer thread itself (it
        cannot wait for itself), it returns at once.
        """
        with self._lock:
            target = self._queued
        if self._done >= target:
            return True
        if threading.current_thread() is self._thread:
            return False
        if self._thread is None or not self._thread.is_alive():
            self._drain_inline()
            return self._done >= target
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(lambda: self._done >= target, timeout)

    @property
    def pending(self) -> int:
        """Changes queued but not yet written."""
        return self._queued - self._done

    # -- writer side
    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=self._run, name="prefect_lite-task-run-recorder", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: write inline instead
                return
            self._thread = thread

    def _run(self) -> None:
        while not self._stopping:
            if not self._queue:
                self._wake.clear()
                self._idle = True
                if not self._queue:
                    self._wake.wait(IDLE_POLL_SECONDS)
                self._idle = False
                continue
            self._send(self._take())

    def _take(self) -> list[Change]:
        queue, batch = self._queue, []
        popleft = queue.popleft
        for _ in range(min(len(queue), self.max_batch)):
            batch.append(popleft())
        return batch

    def _drain_inline(self) -> None:
        while self._queue:
            self._send(self._take())

    def _send(self, batch: list[Change]) -> None:
        try:
            start = 0
            for end in range(1, len(batch) + 1):  # one call per run of the same client
                if end == len(batch) or batch[end][0] is not batch[start][0]:
                    rows = [change[1:] for change in batch[start:end]]
                    apply = functools.partial(batch[start][0].apply_task_run_rows, rows)
                    statuses = outage.ride_out(apply, "recording task runs")
                    _note_refusals(rows, statuses)
                    start = end
        except Exception as exc:
            logger.warning("Could not record %d task run change(s): %s", len(batch), exc)
        finally:
            with self._progress:
                self._done += len(batch)
                self._progress.notify_all()

    def _reset_after_fork(self) -> None:
        self.__init__(self.max_batch)  # type: ignore[misc]


_APPLIED = frozenset({"CREATED", "EXISTS", "ACCEPT", "TURN"})


def _note_refusals(rows: list[Any], statuses: list[str] | None) -> None:
    """Changes the store refused (e.g. a transition the table forbids) are only logged:
    the run's own engine already moved on, and nothing waits for them."""
    for row, status in zip(rows, statuses or (), strict=False):
        if status not in _APPLIED:
            logger.debug("Task run %s: %s of %s answered %s", row[1], row[0], row[2].name, status)


_recorder = TaskRunRecorder()


def get_recorder() -> TaskRunRecorder:
    return _recorder


def record(change: Change) -> None:
    _recorder.record(change)


def flush(timeout: float | None = FLUSH_TIMEOUT_SECONDS) -> bool:
    """Wait until the queued task run changes are in the store."""
    return _recorder.flush(timeout)


def _flush_at_exit() -> None:
    if _recorder.pending:
        _recorder.flush(timeout=10.0)


atexit.register(_flush_at_exit)
os.register_at_fork(after_in_child=_recorder._reset_after_fork)
