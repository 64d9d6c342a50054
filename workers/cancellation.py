"""Stopping a cancelled run's process: SIGTERM at once, SIGKILL after a grace period.

``propose_state`` publishes the id of every run that enters CANCELLING on the cancel
channel; ``CancelListener`` (one pub/sub connection per worker) hears it within
milliseconds and, for a run of this worker, ``request_cancel`` sends SIGTERM to its
process. The child turns SIGTERM into the engine's cancellation: the run ends CANCELLED
and its on_cancellation hooks run. If the run has not reached a final state
``cancel_grace_seconds`` later, SIGKILL; once it has, its hooks get up to
``HOOKS_GRACE_SECONDS`` more. The heartbeat notices a CANCELLING run too, in case a
message was lost while Redis was away.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Any

from prefect_lite import _time
from prefect_lite.exceptions import StoreUnavailable
from prefect_lite.storage import delivery, runs
from workers.process import Child

if TYPE_CHECKING:
    from workers.worker import Worker

logger = logging.getLogger("prefect_lite.workers.cancellation")

HOOKS_GRACE_SECONDS = 30.0
RESUBSCRIBE_SECONDS = 1.0


class CancelListener:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def run(self) -> None:
        while not self.worker.stopped.is_set():
            pubsub: Any = None
            try:
                pubsub = delivery.subscribe_cancellations()
                while not self.worker.stopped.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.on_message(str(message["data"]))
            except (StoreUnavailable, OSError) as exc:
                logger.debug("cancel listener: %s; subscribing again", exc)
            except Exception as exc:  # redis-py's ConnectionError when the server restarts
                logger.debug("cancel listener: %r; subscribing again", exc)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        logger.debug("closing the cancel subscription failed", exc_info=True)
            self.worker.stopped.wait(RESUBSCRIBE_SECONDS)

    def on_message(self, run_id: str) -> None:
        child = self.worker.running_child(run_id)
        if child is not None:
            request_cancel(self.worker, child, run_id=run_id)


def request_cancel(
    worker: Worker, child: Child, reason: str | None = None, run_id: str | None = None
) -> None:
    """SIGTERM the child's process (once); the monitor enforces the grace period. With
    ``run_id``: only if the child still runs that run (children are reused)."""
    if child.cancel_sent_at is not None or child.done is not None:
        return
    if run_id is not None and child.run_id != run_id:
        return
    child.cancel_reason = reason
    child.cancel_sent_at = _time.monotonic()
    logger.info("Cancelling flow run %s: SIGTERM to pid %s", child.run_id, child.pid)
    child.signal(signal.SIGTERM)
    worker.wake_monitor()


def next_deadline(worker: Worker) -> float | None:
    """Seconds until the earliest grace period ends (None: no run is being cancelled)."""
    grace = worker.options.cancel_grace_seconds
    pending = [c.cancel_sent_at + grace for c in worker.active_runs() if c.cancel_sent_at]
    if not pending:
        return None
    return max(0.0, min(pending) - _time.monotonic())


def enforce_deadlines(worker: Worker) -> None:
    """SIGKILL children whose grace period ended before their run reached a final state."""
    grace = worker.options.cancel_grace_seconds
    now = _time.monotonic()
    for child in worker.active_runs():
        if child.cancel_sent_at is None or now < child.cancel_sent_at + grace:
            continue
        run = runs.read_run("flow", str(child.run_id))
        if run is not None and run.state is not None and run.state.is_final():
            child.cancel_sent_at = now + HOOKS_GRACE_SECONDS - grace  # hooks are running
            continue
        logger.warning(
            "Flow run %s did not stop within %s s of SIGTERM: SIGKILL", child.run_id, grace
        )
        child.signal(signal.SIGKILL)
        child.cancel_sent_at = now + HOOKS_GRACE_SECONDS  # once
