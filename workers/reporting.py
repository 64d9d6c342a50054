"""What a worker records when one of its children ends.

A child that ran its flow run reported the final state itself (through the engine);
``orchestration.exits.settle_exit`` handles the rest: a cancelled or crashed run's subflow
runs, and a run whose process died without a final state (CANCELLED if it was being
cancelled, else CRASHED or AwaitingRetry; on_crashed hooks queued for the pool).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prefect_lite.orchestration.exits import settle_exit
from workers.process import Child, describe_exit

if TYPE_CHECKING:
    from workers.worker import Worker

logger = logging.getLogger("prefect_lite.workers")


_SETTLED = frozenset({"COMPLETED", "FAILED", "SCHEDULED"})  # nothing left to do


def report_exit(worker: Worker, child: Child) -> None:
    if child.kind == "hooks" or child.run_id is None:
        logger.info("on_crashed hooks of flow run %s ran (pid %s)", child.run_id, child.pid)
        return
    if child.done is not None and child.done[0] in _SETTLED:
        logger.info("Flow run %s ended %s", child.run_id, child.done[1])
        return
    how = describe_exit(child.exit_code) if child.done is None else "its run ended"
    if child.fenced is not None and child.done is None:
        how = child.fenced
    cancelled = child.cancel_sent_at is not None
    outcome = settle_exit(child.run_id, child.lease, how, cancelled, child.cancel_reason)
    if outcome is None:
        logger.info("Flow run %s ended (pid %s, %s)", child.run_id, child.pid, how)
    else:
        logger.warning("Flow run %s: its process ended (%s) -> %s", child.run_id, how, outcome.name)
