"""Stopping a worker: SIGTERM (or a first Ctrl-C) drains it; a second Ctrl-C exits at once.

Draining: no new claims; running runs get ``shutdown_grace_seconds`` to finish; the ones
still running are then cancelled - CANCELLING with a message that says why, which stops
their processes like any cancellation (SIGTERM, SIGKILL after the cancel grace period).
Exiting at once: every child is killed and its run marked CRASHED ("interrupted"), in one
round trip if Redis answers; if it does not, the runs' leases expire and the reaper
settles them.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING, Any

from prefect_lite import _time
from prefect_lite.exceptions import StoreUnavailable
from prefect_lite.states import Cancelling, Crashed
from prefect_lite.storage import runs
from workers.cancellation import request_cancel

if TYPE_CHECKING:
    from workers.worker import Worker

logger = logging.getLogger("prefect_lite.workers.shutdown")

POLL_SECONDS = 0.05
INTERRUPTED = "Execution was aborted by an interrupt signal: its worker was stopped at once."


class ExitNow(BaseException):
    """A second Ctrl-C: leave without waiting for anything."""


class Shutdown:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.signals = 0
        self.why = ""
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals > 1 and signum == signal.SIGINT:
            raise ExitNow()
        if self.signals == 1:
            self.why = name
            self.worker.stopping.set()
            logger.info("%s: worker %r stops claiming and drains", name, self.worker.name)

    def drain(self) -> None:
        """Wait for running runs up to the grace period, then cancel the rest."""
        worker = self.worker
        grace = worker.options.shutdown_grace_seconds
        deadline = _time.monotonic() + grace
        while worker.active_runs() and _time.monotonic() < deadline:
            worker.stopped.wait(POLL_SECONDS)
        left = worker.active_runs()
        if not left:
            return
        reason = (
            f"Cancelled: worker {worker.name!r} shut down ({self.why or 'stop'}) and the run "
            f"did not finish within its {grace:g} s grace period."
        )
        batch = runs.RunBatch()
        for child in left:
            batch.propose(
                "flow", str(child.run_id), runs.Proposal(state=Cancelling(message=reason))
            )
        try:
            batch.execute()
        except StoreUnavailable:
            logger.warning("could not record why the runs were cancelled: Redis unavailable")
        for child in left:
            request_cancel(worker, child, reason)
        limit = _time.monotonic() + worker.options.cancel_grace_seconds + 5.0
        while worker.active_runs() and _time.monotonic() < limit:
            worker.stopped.wait(POLL_SECONDS)

    def exit_now(self) -> None:
        """Kill every child; mark their runs CRASHED if Redis answers."""
        left = self.worker.active_runs()
        self.worker.aborting = True  # the runs are recorded here, not by the monitor
        for child in left:
            child.signal(signal.SIGKILL)
        batch = runs.RunBatch()
        for child in left:
            proposal = runs.Proposal(state=Crashed(message=INTERRUPTED), lease=child.lease)
            batch.propose("flow", str(child.run_id), proposal)
        try:
            if len(batch):
                batch.execute()
        except StoreUnavailable:
            logger.warning("Redis unavailable: the reaper will settle the interrupted runs")
