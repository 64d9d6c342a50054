"""Local flow runs hold a lease too, renewed by one background thread per process.

A flow run called in a plain Python process (not a worker's) takes a lease with its
RUNNING state and keeps it while it runs; the process's ``LeaseRenewer`` thread extends
every lease the process holds each ``lease_seconds / 3``, off the engine's hot path. So
a process that dies (kill -9) leaves a lease the reaper settles: at once when the
process's connections to Redis closed (in process), after the silent-holder window over
HTTP; a run being cancelled whose process is gone ends Cancelled once its lease expires.
Nobody else can run a local run's body (it has no deployment), so no fencing is needed.

``LocalLeaseClient`` wraps the engine's client for the outermost run: the run's RUNNING
proposal takes the lease, every later proposal carries it (a run taken over meanwhile
then has its writes rejected), its final state releases it.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

from prefect_lite import _time
from prefect_lite.settings import get_settings
from prefect_lite.states import State, StateType

logger = logging.getLogger("prefect_lite.engine")


class LeaseRenewer:
    """The process's thread renewing the leases of its local runs."""

    def __init__(self) -> None:
        self._held: dict[uuid.UUID, str] = {}
        self._client: Any = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def hold(self, client: Any, run_id: uuid.UUID, token: str) -> None:
        with self._lock:
            self._held[run_id] = token
            self._client = client
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="prefect-lite-lease-renewer", daemon=True
                )
                self._thread.start()

    def release(self, run_id: uuid.UUID) -> None:
        with self._lock:
            self._held.pop(run_id, None)

    def _run(self) -> None:
        while True:
            self._wake.wait(get_settings().lease_seconds / 3)
            with self._lock:
                held, client = list(self._held.items()), self._client
            if held:
                self._renew(client, held)

    def _renew(self, client: Any, held: list[tuple[uuid.UUID, str]]) -> None:
        try:
            answers = client.renew_flow_run_leases(held, get_settings().lease_seconds)
        except Exception as exc:  # the store is away: the runs ride it out
            if not self._failing:
                logger.warning("Could not renew the lease of local flow runs: %s", exc)
            self._failing = True
            return
        if self._failing:
            logger.info("Leases of local flow runs renewed again")
        self._failing = False
        for (run_id, _token), answer in zip(held, answers, strict=False):
            if answer in ("FREE", "LOST"):
                self.release(run_id)


_renewer: LeaseRenewer | None = None


def _after_fork_in_child() -> None:
    global _renewer
    _renewer = None  # the parent's thread does not exist here


os.register_at_fork(after_in_child=_after_fork_in_child)


def renewer() -> LeaseRenewer:
    global _renewer
    if _renewer is None:
        _renewer = LeaseRenewer()
    return _renewer


class LocalLeaseClient:
    """The engine's client for one local outermost run: its proposals take, carry and
    release the run's lease. Every other call goes to the wrapped client."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.run_id: uuid.UUID | None = None
        self.token: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def set_flow_run_state(
        self, flow_run_id: uuid.UUID, state: State, force: bool = False, **options: Any
    ) -> Any:
        if self.run_id is not None and flow_run_id != self.run_id:
            return self._client.set_flow_run_state(flow_run_id, state, force=force, **options)
        expiry = _time.timestamp() + get_settings().lease_seconds
        if self.token is None and state.type is StateType.RUNNING:
            token = self._client.new_lease_token()
            answer = self._client.set_flow_run_state(
                flow_run_id, state, force=force, new_lease=token, lease_expiry=expiry, **options
            )
            if answer.status == "ACCEPT":
                self.run_id, self.token = flow_run_id, token
                renewer().hold(self._client, flow_run_id, token)
            return answer
        if self.token is None:
            return self._client.set_flow_run_state(flow_run_id, state, force=force, **options)
        answer = self._client.set_flow_run_state(
            flow_run_id, state, force=force, lease=self.token, lease_expiry=expiry, **options
        )
        ends_lease = state.is_final() or state.type is StateType.SCHEDULED
        if answer.status == "ACCEPT" and (ends_lease or state.name == "Suspended"):
            renewer().release(flow_run_id)  # the lease went with the state
            self.token = None
        return answer

    def release(self) -> None:
        """The run is over (whatever its last proposal answered): stop renewing."""
        if self.run_id is not None:
            renewer().release(self.run_id)
