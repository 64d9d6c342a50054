"""Noticing that a running flow run was cancelled from outside (CLI, API, UI).

One daemon thread polls the state of every flow run executing in this process, every
``POLL_SECONDS``. When one is CANCELLING or CANCELLED, its ``FlowRunScope`` is marked;
the engine checks the mark at each task run boundary and stops the flow run there
(``Abort``), ending it Cancelled. Code that runs no tasks is not interrupted: a worker
stops such a run by ending its process.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

from prefect_lite.engine.scope import FlowRunScope
from prefect_lite.states import StateType

POLL_SECONDS = 1.0
_STOP_TYPES = frozenset({StateType.CANCELLING, StateType.CANCELLED})

logger = logging.getLogger("prefect_lite.engine.cancellation")


class CancellationWatcher:
    def __init__(self) -> None:
        self._watched: dict[uuid.UUID, FlowRunScope] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, scope: FlowRunScope) -> None:
        with self._lock:
            self._watched[scope.flow_run_id] = scope
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="prefect_lite-cancellation-watcher", daemon=True
                )
                self._thread.start()

    def unwatch(self, scope: FlowRunScope) -> None:
        with self._lock:
            if self._watched.get(scope.flow_run_id) is scope:
                del self._watched[scope.flow_run_id]

    def check_once(self) -> None:
        """Read every watched run's state once and mark the cancelled ones."""
        with self._lock:
            scopes = list(self._watched.values())
        for scope in scopes:
            try:
                run: Any = scope.client.read_flow_run(scope.flow_run_id)
            except Exception as exc:  # store briefly unavailable: try again next round
                logger.debug("Could not read flow run %s: %s", scope.flow_run_id, exc)
                continue
            if run.state_type in _STOP_TYPES and scope.cancel_reason is None:
                message = run.state.message if run.state is not None else None
                scope.cancel_reason = message or "The flow run was cancelled."

    def _run(self) -> None:
        while True:
            self._wake.wait(POLL_SECONDS)
            with self._lock:
                if not self._watched:
                    self._thread = None
                    return
            self.check_once()


_watcher = CancellationWatcher()
os.register_at_fork(after_in_child=lambda: _watcher.__init__())  # type: ignore[misc]


def get_watcher() -> CancellationWatcher:
    return _watcher
