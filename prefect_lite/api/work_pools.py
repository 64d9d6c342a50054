"""Work pool, work queue and worker handlers.

A pool has a type (``process``), an optional concurrency limit, a paused flag and at least
one queue (``default``, created with it). Queues have a priority (lower first), their own
limit and paused flag. Raising a limit or resuming admits waiting runs at once. Workers
register themselves (``workers`` package); these handlers only read their records.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from prefect_lite import _time
from prefect_lite.api import pool_usage
from prefect_lite.api.registry import operation
from prefect_lite.exceptions import ObjectAlreadyExists, ObjectNotFound, ValidationError
from prefect_lite.orchestration import admission, exits
from prefect_lite.schemas import (
    FlowRun,
    LeaseRenewal,
    Worker,
    WorkPool,
    WorkPoolStatus,
    WorkQueue,
    WorkQueueStatus,
    check_paging,
)
from prefect_lite.states import State
from prefect_lite.storage import delivery, keys, pools, runs
from prefect_lite.storage import leases as run_leases

POOL_TYPES = ("process",)
DEFAULT_QUEUE = "default"
MAX_NAME_LENGTH = 100
# Pool and queue names are part of RQ queue names and Redis keys: no dots, colons, slashes.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(
            f"invalid {what} {value!r}: use letters, digits, '-' and '_' (starting with a "
            "letter or digit)"
        )
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationError(f"{what} is {len(value)} characters long; the limit is 100")
    return value


MAX_NUMBER = 1_000_000  # limits and priorities
MAX_DESCRIPTION = 2000


def _check_limit(value: int | None, what: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not 0 <= value <= MAX_NUMBER):
        raise ValidationError(
            f"{what} concurrency limit must be between 0 and {MAX_NUMBER}, not {value!r}"
        )
    return value


def _check_priority(value: int) -> int:
    if isinstance(value, bool) or not 1 <= value <= MAX_NUMBER:
        raise ValidationError(
            f"work queue priority must be between 1 and {MAX_NUMBER}, not {value!r}"
        )
    return value


def _check_description(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_DESCRIPTION:
        raise ValidationError(
            f"description is {len(value)} characters long; the limit is {MAX_DESCRIPTION}"
        )
    return value


# ----------------------------------------------------------------------------- pools


@operation("POST", "/work_pools/", status_code=201, tag="work_pools", role="admin")
def create_work_pool(
    name: str,
    type: str = "process",
    description: str | None = None,
    concurrency_limit: int | None = None,
    paused: bool = False,
) -> WorkPool:
    """Create a pool and its ``default`` queue."""
    check_name(name, "work pool name")
    if type not in POOL_TYPES:
        raise ValidationError(
            f"unknown work pool type {type!r}; supported: {', '.join(POOL_TYPES)}"
        )
    pool = WorkPool(
        name=name,
        type=type,
        description=_check_description(description),
        concurrency_limit=_check_limit(concurrency_limit, "the pool's"),
        paused=paused,
        default_queue_name=DEFAULT_QUEUE,
    )
    queue = WorkQueue(name=DEFAULT_QUEUE, work_pool_name=name, priority=1)
    if not pools.create_pool(pool, queue):
        raise ObjectAlreadyExists(f"work pool {name!r} already exists")
    return pool


@operation("GET", "/work_pools/{work_pool_name}", tag="work_pools", role="read")
def read_work_pool(work_pool_name: str) -> WorkPool:
    found = pools.get_pool(work_pool_name)
    if found is None:
        known = ", ".join(p.name for p in pools.list_pools(limit=20)) or "none yet"
        raise ObjectNotFound(f"no work pool named {work_pool_name!r} (pools: {known})")
    return found


@operation("POST", "/work_pools/filter", tag="work_pools", role="read")
def read_work_pools(limit: int = 200, offset: int = 0) -> list[WorkPool]:
    check_paging(limit, offset)
    return pools.list_pools(limit=limit, offset=offset)


@operation("PATCH", "/work_pools/{work_pool_name}", tag="work_pools", role="admin")
def update_work_pool(
    work_pool_name: str,
    description: str | None = None,
    concurrency_limit: int | None = None,
    clear_concurrency_limit: bool = False,
    paused: bool | None = None,
) -> WorkPool:
    """Change what is given; ``clear_concurrency_limit`` removes the limit."""
    pool = read_work_pool(work_pool_name)
    update: dict[str, object] = {"updated": _time.now()}
    if description is not None:
        update["description"] = _check_description(description)
    if clear_concurrency_limit:
        update["concurrency_limit"] = None
    elif concurrency_limit is not None:
        update["concurrency_limit"] = _check_limit(concurrency_limit, "the pool's")
    if paused is not None:
        update["paused"] = paused
    changed = pool.model_copy(update=update)
    pools.save_pool(changed)
    admission.admit_waiting(work_pool_name)
    return changed


@operation(
    "DELETE", "/work_pools/{work_pool_name}", status_code=204, tag="work_pools", role="admin"
)
def delete_work_pool(work_pool_name: str, force: bool = False) -> None:
    """Delete the pool with its queues and worker records. Refused while deployments use
    it or runs on it have not ended, unless ``force``, which cancels those runs."""
    pool = read_work_pool(work_pool_name)
    deployments, runs = pool_usage.users(work_pool_name, None, pool.default_queue_name)
    if not force:
        pool_usage.check_unused(f"work pool {work_pool_name!r}", deployments, runs)
    pool_usage.cancel_runs(runs, f"Its work pool {work_pool_name!r} was deleted.")
    pools.delete_pool(work_pool_name)


@operation("GET", "/work_pools/{work_pool_name}/status", tag="work_pools", role="read")
def read_work_pool_status(work_pool_name: str) -> WorkPoolStatus:
    """The pool with its queues' usage and its workers."""
    pool = read_work_pool(work_pool_name)
    queues = pools.list_queues(work_pool_name)
    usage = pools.queue_usage(work_pool_name, [q.name for q in queues])
    return WorkPoolStatus(
        pool=pool,
        queues=[
            WorkQueueStatus(
                name=q.name,
                priority=q.priority,
                concurrency_limit=q.concurrency_limit,
                paused=q.paused,
                queued=queued,
                active=active,
            )
            for q, (queued, active) in zip(queues, usage, strict=True)
        ],
        workers=pools.list_workers(work_pool_name),
        active=pools.slot_holders([keys.slot_pool(work_pool_name)])[0],
        waiting=pools.waiting_count(work_pool_name),
    )


# ----------------------------------------------------------------------------- queues


@operation(
    "POST", "/work_pools/{work_pool_name}/queues", status_code=201, tag="work_pools", role="admin"
)
def create_work_queue(
    work_pool_name: str,
    name: str,
    description: str | None = None,
    priority: int | None = None,
    concurrency_limit: int | None = None,
    paused: bool = False,
) -> WorkQueue:
    """Add a queue to a pool; without ``priority`` it goes after the existing ones."""
    read_work_pool(work_pool_name)
    check_name(name, "work queue name")
    existing = pools.list_queues(work_pool_name)
    if priority is None:
        priority = max((q.priority for q in existing), default=0) + 1
    queue = WorkQueue(
        name=name,
        work_pool_name=work_pool_name,
        description=_check_description(description),
        priority=_check_priority(priority),
        concurrency_limit=_check_limit(concurrency_limit, "the queue's"),
        paused=paused,
    )
    if not pools.create_queue(queue):
        raise ObjectAlreadyExists(f"work pool {work_pool_name!r} already has a queue {name!r}")
    _make_room(existing, queue)
    return queue


def _make_room(others: list[WorkQueue], placed: WorkQueue) -> None:
    """A queue given a priority another queue has goes before it: the queues from there on
    move down by one, so priorities stay distinct and the order is what was asked."""
    taken = {q.priority for q in others if q.name != placed.name}
    if placed.priority not in taken:
        return
    for queue in sorted(others, key=lambda q: q.priority, reverse=True):
        if queue.name != placed.name and queue.priority >= placed.priority:
            pools.save_queue(queue.model_copy(update={"priority": queue.priority + 1}))


@operation("GET", "/work_pools/{work_pool_name}/queues/{name}", tag="work_pools", role="read")
def read_work_queue(work_pool_name: str, name: str) -> WorkQueue:
    read_work_pool(work_pool_name)
    found = pools.get_queue(work_pool_name, name)
    if found is None:
        known = ", ".join(q.name for q in pools.list_queues(work_pool_name))
        raise ObjectNotFound(
            f"work pool {work_pool_name!r} has no queue {name!r} (its queues: {known})"
        )
    return found


@operation("POST", "/work_pools/{work_pool_name}/queues/filter", tag="work_pools", role="read")
def read_work_queues(work_pool_name: str) -> list[WorkQueue]:
    """The pool's queues in priority order."""
    read_work_pool(work_pool_name)
    return pools.list_queues(work_pool_name)


@operation("PATCH", "/work_pools/{work_pool_name}/queues/{name}", tag="work_pools", role="admin")
def update_work_queue(
    work_pool_name: str,
    name: str,
    description: str | None = None,
    priority: int | None = None,
    concurrency_limit: int | None = None,
    clear_concurrency_limit: bool = False,
    paused: bool | None = None,
) -> WorkQueue:
    queue = read_work_queue(work_pool_name, name)
    update: dict[str, object] = {"updated": _time.now()}
    if description is not None:
        update["description"] = _check_description(description)
    if priority is not None:
        update["priority"] = _check_priority(priority)
    if clear_concurrency_limit:
        update["concurrency_limit"] = None
    elif concurrency_limit is not None:
        update["concurrency_limit"] = _check_limit(concurrency_limit, "the queue's")
    if paused is not None:
        update["paused"] = paused
    changed = queue.model_copy(update=update)
    pools.save_queue(changed)
    if priority is not None:
        _make_room(pools.list_queues(work_pool_name), changed)
    admission.admit_waiting(work_pool_name)
    return changed


@operation(
    "DELETE",
    "/work_pools/{work_pool_name}/queues/{name}",
    status_code=204,
    tag="work_pools",
    role="admin",
)
def delete_work_queue(work_pool_name: str, name: str, force: bool = False) -> None:
    """Delete a queue; a pool's default queue cannot be deleted. Refused while
    deployments use it or runs on it have not ended, unless ``force`` (cancels the runs)."""
    pool = read_work_pool(work_pool_name)
    read_work_queue(work_pool_name, name)
    if name == pool.default_queue_name:
        raise ValidationError(f"{name!r} is the default queue of {work_pool_name!r}; it stays")
    deployments, runs = pool_usage.users(work_pool_name, name, pool.default_queue_name)
    if not force:
        what = f"work queue {name!r} of pool {work_pool_name!r}"
        pool_usage.check_unused(what, deployments, runs)
    pool_usage.cancel_runs(runs, f"Its work queue {name!r} was deleted.")
    pools.delete_queue(work_pool_name, name)


# ----------------------------------------------------------------------------- workers


@operation("POST", "/workers/filter", tag="work_pools", role="read")
def read_workers(work_pool_name: str | None = None) -> list[Worker]:
    """Registered workers (of one pool, or all), online ones first."""
    if work_pool_name is not None:
        read_work_pool(work_pool_name)
    found = pools.list_workers(work_pool_name)
    return sorted(found, key=lambda w: (w.status != "ONLINE", w.work_pool_name, w.name))


# ----------------------------------------------------------------------------- runners
# What a process serving its own deployments (``serve``) needs, through the client.

MAX_RUNNER_ITEMS = 10_000
_DELIVERABLE = ("Scheduled", "Late", "AwaitingRetry")


@operation("POST", "/flow_runs/due", tag="work_pools", role="worker")
def read_due_flow_runs(
    deployment_ids: list[uuid.UUID], before: datetime | None = None, limit: int = 100
) -> list[FlowRun]:
    """Runs of these deployments waiting to start by ``before`` (default now), oldest
    first: Scheduled, Late or AwaitingRetry, not handed to a pool."""
    check_paging(limit, 0)
    if len(deployment_ids) > MAX_RUNNER_ITEMS:
        raise ValidationError(f"at most {MAX_RUNNER_ITEMS} deployment ids at once")
    at = (before or _time.now()).timestamp()
    ids = delivery.due_runs_of([str(d) for d in deployment_ids], at, limit)
    found: list[FlowRun] = runs.read_runs("flow", ids)
    return [r for r in found if r.state_name in _DELIVERABLE and not r.work_pool_name]


@operation("POST", "/flow_runs/leases/renew", tag="work_pools", role="worker")
def renew_flow_run_leases(leases: list[LeaseRenewal], lease_seconds: float) -> list[str]:
    """Extend the leases still held; per run its state type, FREE (it holds no lease any
    more: it ended) or LOST (another holder took it over)."""
    if not 0 < lease_seconds <= 3600:
        raise ValidationError(f"lease_seconds must be in (0, 3600], not {lease_seconds!r}")
    if len(leases) > MAX_RUNNER_ITEMS:
        raise ValidationError(f"at most {MAX_RUNNER_ITEMS} leases at once")
    pairs = [(str(item.flow_run_id), item.lease) for item in leases]
    return run_leases.renew_leases(pairs, _time.timestamp() + lease_seconds)


@operation("POST", "/flow_runs/{flow_run_id}/exit", tag="work_pools", role="worker")
def report_flow_run_exit(
    flow_run_id: uuid.UUID,
    lease: str,
    how: str,
    cancelled: bool = False,
    reason: str | None = None,
) -> State | None:
    """The process of a leased run ended without a final state (``how``: e.g. "killed by
    SIGSEGV"): CANCELLED, CRASHED or AwaitingRetry (see ``orchestration.exits``); the
    state recorded, or None if there was nothing to record."""
    if len(how) > MAX_DESCRIPTION or (reason is not None and len(reason) > MAX_DESCRIPTION):
        raise ValidationError(f"how and reason are limited to {MAX_DESCRIPTION} characters")
    return exits.settle_exit(flow_run_id, lease, how, cancelled, reason)
