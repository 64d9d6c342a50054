"""Why is this run waiting? The facts that keep a scheduled or pending run from starting.

A run waits because it is not due yet, its work pool or queue is missing or paused, no
online worker polls its queue, or a concurrency limit (pool, queue or deployment) is full.
Each reason is one sentence; none found means a worker should take it at its next poll.
"""

from __future__ import annotations

from datetime import timedelta

from prefect_lite import _time
from prefect_lite.schemas import Deployment, FlowRun, WorkPool
from prefect_lite.storage import deployments as deployment_store
from prefect_lite.storage import keys, pools

HEARTBEAT_STALE = timedelta(seconds=90)
WAITING_TYPES = {"SCHEDULED", "PENDING"}


def _not_due(run: FlowRun) -> str | None:
    state = run.state
    scheduled = state.state_details.scheduled_time if state else None
    if scheduled is not None and scheduled > _time.now():
        return f"It is scheduled to start at {scheduled:%Y-%m-%d %H:%M:%S} UTC, not yet due."
    return None


def _deployment(run: FlowRun) -> tuple[Deployment | None, list[str]]:
    if run.deployment_id is None:
        return None, []
    found = deployment_store.get_by_id(run.deployment_id)
    if found is None:
        return None, ["Its deployment no longer exists."]
    if found.paused:
        return found, [f"Its deployment {found.full_name!r} is paused."]
    return found, []


def _pool_reasons(pool: WorkPool, queue_name: str) -> list[str]:
    out: list[str] = []
    if pool.paused:
        out.append(f"Work pool {pool.name!r} is paused.")
    queue = pools.get_queue(pool.name, queue_name)
    if queue is None:
        out.append(f"Work queue {queue_name!r} does not exist in pool {pool.name!r}.")
    elif queue.paused:
        out.append(f"Work queue {queue_name!r} of pool {pool.name!r} is paused.")
    fresh = _time.now() - HEARTBEAT_STALE
    online = [
        w
        for w in pools.list_workers(pool.name)
        if w.status == "ONLINE" and w.last_heartbeat_time >= fresh
    ]
    polling = [w for w in online if not w.work_queue_names or queue_name in w.work_queue_names]
    if not online:
        out.append(f"No worker is online on pool {pool.name!r}.")
    elif not polling:
        out.append(
            f"{len(online)} worker(s) are online on pool {pool.name!r}; "
            f"none polls queue {queue_name!r}."
        )
    return out


def _limit_reasons(
    pool: WorkPool, queue_name: str, deployment: Deployment | None, held: bool
) -> list[str]:
    queue = pools.get_queue(pool.name, queue_name)
    limits: list[tuple[str, str, int]] = []
    if pool.concurrency_limit is not None:
        limits.append(
            (f"work pool {pool.name!r}", keys.slot_pool(pool.name), pool.concurrency_limit)
        )
    if queue is not None and queue.concurrency_limit is not None:
        limits.append(
            (
                f"work queue {queue_name!r}",
                keys.slot_queue(pool.name, queue_name),
                queue.concurrency_limit,
            )
        )
    if deployment is not None and deployment.concurrency_limit is not None:
        limits.append(
            (
                f"deployment {deployment.full_name!r}",
                keys.slot_deployment(str(deployment.id)),
                deployment.concurrency_limit,
            )
        )
    used = pools.slot_holders([key for _, key, _ in limits]) if limits else []
    out = [
        f"The concurrency limit of {what} is full: {n} of {limit} slots in use."
        for (what, _, limit), n in zip(limits, used, strict=True)
        if n >= limit
    ]
    if held and not out:
        out.append("A concurrency limit held it back; it starts when a slot frees up.")
    return out


def reasons(run: FlowRun, held_by_limit: bool) -> list[str]:
    """Why ``run`` has not started (empty for a run that is not waiting)."""
    if str(run.state_type or "") not in WAITING_TYPES:
        return []
    not_due = _not_due(run)
    deployment, out = _deployment(run)
    if not run.work_pool_name:
        if not_due:
            return [not_due, *out]
        return [
            *out,
            "It has no work pool: the process that created it runs it (a flow call or serve).",
        ]
    pool = pools.get_pool(run.work_pool_name)
    if pool is None:
        return [*out, f"Its work pool {run.work_pool_name!r} does not exist."]
    queue_name = run.work_queue_name or pool.default_queue_name
    out += _pool_reasons(pool, queue_name)
    out += _limit_reasons(pool, queue_name, deployment, held_by_limit)
    if not_due:
        out.insert(0, not_due)
    if not out:
        out.append("Nothing holds it: a worker should take it at its next poll.")
    return out
