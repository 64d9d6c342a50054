"""The worker's heartbeat: renew the leases of its runs and its own record.

Every ``lease_seconds / 3`` one script extends the lease of every run this worker holds
and answers each run's state type. That answer is also the slow path of cancellation (a
run found CANCELLING is stopped even if the pub/sub message was missed) and of losing a
run: LOST means the reaper took the lease over (this worker looked dead), so the child is
killed before it runs anything twice. The worker record (``worker ls``) gets the time and
the number of runs; a worker serving all of a pool's queues picks up new ones here.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import TYPE_CHECKING

from prefect_lite import _time
from prefect_lite.exceptions import StoreUnavailable
from prefect_lite.orchestration.outage_log import OutageLog
from prefect_lite.storage import leases
from workers.cancellation import request_cancel

if TYPE_CHECKING:
    from workers.worker import Worker

logger = logging.getLogger("prefect_lite.workers.heartbeat")


class Heartbeat:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.outage = OutageLog(logger, "heartbeat (leases may expire)")

    @property
    def interval(self) -> float:
        return self.worker.lease_seconds / 3

    def run(self) -> None:
        while not self.worker.stopped.wait(self.interval):
            try:
                self.beat()
                self.outage.ok()
            except StoreUnavailable as exc:
                self.outage.failed(exc)
            except Exception:
                logger.exception("heartbeat failed")

    def beat(self) -> None:
        worker = self.worker
        held = [(c, str(c.run_id), c.lease) for c in worker.active_runs() if c.run_id]
        sent = time.monotonic()  # the new expiry counts from here: so does the fence
        answers = leases.renew_leases(
            [(run_id, lease) for _, run_id, lease in held],
            _time.timestamp() + worker.lease_seconds,
        )
        for (child, run_id, _lease), answer in zip(held, answers, strict=True):
            if answer not in ("LOST", "FREE") and child.run_id == run_id:
                child.renewed_at = max(child.renewed_at, sent)
            if answer == "CANCELLING":
                request_cancel(worker, child, run_id=run_id)
            elif answer == "LOST" and child.done is None and child.run_id == run_id:
                logger.warning(
                    "Flow run %s is held by someone else now (lease taken over); stopping it",
                    child.run_id,
                )
                child.signal(signal.SIGKILL)
        worker.save_record("ONLINE")
        if not worker.options.queues:
            worker.refresh_queues()
