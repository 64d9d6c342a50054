"""Why a triggered run may not start: said at once, not discovered after a long wait.

``start_problem(client, run)`` looks at the run's work pool as it is now: the pool or the
run's queue paused, or no ONLINE worker serving that queue. ``run_deployment`` logs it
as a warning and ``deployment run --watch`` prints it, right after creating the run (the
run still waits: a worker started later picks it up).
"""

from __future__ import annotations

from typing import Any

from prefect_lite.schemas import FlowRun


def start_problem(client: Any, run: FlowRun) -> str | None:
    """One line saying why ``run`` cannot start now, or None when nothing stands in its way
    (or it has no pool: a ``serve`` process runs it)."""
    pool_name, queue = run.work_pool_name, run.work_queue_name
    if not pool_name:
        return None
    try:
        status = client.read_work_pool_status(pool_name)
    except Exception:  # the answer is advice: never let it break the trigger
        return None
    queue = queue or status.pool.default_queue_name
    if status.pool.paused:
        return (
            f"work pool {pool_name!r} is paused: the run waits until "
            f"`prefect-lite work-pool resume {pool_name}`"
        )
    for q in status.queues:
        if q.name == queue and q.paused:
            return (
                f"work queue {queue!r} of pool {pool_name!r} is paused: the run waits until "
                f"`prefect-lite work-queue resume {queue} --pool {pool_name}`"
            )
    serving = [
        w
        for w in status.workers
        if w.status == "ONLINE" and (not w.work_queue_names or queue in w.work_queue_names)
    ]
    if not serving:
        return (
            f"no online worker serves work pool {pool_name!r} (queue {queue!r}): the run "
            f"waits until one starts (`prefect-lite worker start --pool {pool_name}`)"
        )
    return None
