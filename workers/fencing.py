"""The worker's side of the fencing rule: stop a run whose lease could not be renewed.

A worker cut off from Redis cannot renew its leases, and after a while the reaper may
hand its runs to someone else (``orchestration/fencing.py``). So, independently of the
heartbeat (which may be stuck waiting on a dead connection), every ``CHECK_SECONDS`` this
thread kills (SIGKILL) the process of each run whose lease was last renewed more than
``fence_after`` (outage tolerance + one lease: 36 s by default) ago. The reaper takes a
silent holder's run over only ``FENCE_MARGIN_SECONDS`` after that, so two copies of a
run's body never run at once. A shorter outage (the store restarting) fences nothing.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import TYPE_CHECKING

from prefect_lite.orchestration import fencing

if TYPE_CHECKING:
    from workers.worker import Worker

logger = logging.getLogger("prefect_lite.workers.fencing")

CHECK_SECONDS = 0.5


class Fence:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def run(self) -> None:
        while not self.worker.stopped.wait(CHECK_SECONDS):
            try:
                self.check(time.monotonic())
            except Exception:
                logger.exception("fence check failed")

    def check(self, now: float) -> list[str]:
        """Kill the processes of runs not renewed within the fence; their run ids."""
        limit = fencing.fence_after()
        fenced = []
        for child in self.worker.active_runs():
            silent = now - child.renewed_at
            if child.fenced is None and child.run_id and silent > limit:
                child.fenced = (
                    f"stopped by its worker, which could not renew the run's lease for "
                    f"{silent:.0f} s (fenced: another worker may take the run over)"
                )
                logger.warning(
                    "Flow run %s: lease not renewed for %.0f s (Redis unreachable?); "
                    "stopping its process so that no one else runs it at the same time",
                    child.run_id,
                    silent,
                )
                child.signal(signal.SIGKILL)
                fenced.append(child.run_id)
        return fenced
