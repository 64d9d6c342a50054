"""What uses a work pool or queue: deployments that name it and runs not ended on it.

Deleting a pool or queue in use would strand those runs silently, so the delete handlers
refuse it (``check_unused``) unless forced; forcing cancels the runs that have not ended
(``cancel_runs``: queued ones end Cancelled at once, running ones are stopped by their
worker). Deployments keep naming the pool: their next runs wait until it exists again.
"""

from __future__ import annotations

from prefect_lite.exceptions import ValidationError
from prefect_lite.schemas import Deployment, FlowRun
from prefect_lite.states import StateType

_NOT_ENDED = [
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
]
MAX_SCAN = 10_000


def users(
    pool: str, queue: str | None, default_queue: str
) -> tuple[list[Deployment], list[FlowRun]]:
    """Deployments naming the pool (and queue) and its runs that have not ended."""
    from prefect_lite.api.deployments import read_deployments
    from prefect_lite.api.flow_runs import read_flow_runs

    def on_queue(name: str | None) -> bool:
        return queue is None or (name or default_queue) == queue

    deployments = [
        d
        for d in read_deployments(limit=MAX_SCAN)
        if d.work_pool_name == pool and on_queue(d.work_queue_name)
    ]
    runs = [
        r
        for r in read_flow_runs(states=_NOT_ENDED, limit=MAX_SCAN)
        if r.work_pool_name == pool and on_queue(r.work_queue_name)
    ]
    return deployments, runs


def check_unused(what: str, deployments: list[Deployment], runs: list[FlowRun]) -> None:
    """``ValidationError`` naming what uses it, when anything does."""
    if not deployments and not runs:
        return
    parts = []
    if deployments:
        names = ", ".join(repr(d.full_name) for d in deployments[:3])
        more = f" and {len(deployments) - 3} more" if len(deployments) > 3 else ""
        parts.append(f"{len(deployments)} deployment(s) use it ({names}{more})")
    if runs:
        parts.append(f"{len(runs)} flow run(s) on it have not ended")
    raise ValidationError(
        f"{what} is in use: {' and '.join(parts)}; delete or move them first, or force it "
        "(--force), which cancels those runs"
    )


def cancel_runs(runs: list[FlowRun], why: str) -> int:
    """Cancel each run (queued: Cancelled now; running: stopped by its worker)."""
    from prefect_lite.api.cancellation import cancel_flow_run

    cancelled = 0
    for run in runs:
        if cancel_flow_run(run.id, message=why).status == "ACCEPT":
            cancelled += 1
    return cancelled
