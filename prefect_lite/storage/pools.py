"""Work pools, their work queues and the workers serving them.

Pools are named records (kind ``work_pool``), queues are named ``{pool}/{queue}`` (kind
``work_queue``) and workers ``{pool}/{worker}`` (kind ``worker``), so the records of one
pool are a name-prefix scan. Usage figures (runs holding a slot, runs queued) are read
from the slot sets and the RQ queue lists; see ``keys``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from prefect_lite.schemas import Worker, WorkPool, WorkQueue
from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis, translate_errors
from prefect_lite.storage.records import NamedRecords

POOL_KIND = "work_pool"  # the kind the deployments API checks pool names against
QUEUE_KIND = "work_queue"
WORKER_KIND = "worker"

pools: NamedRecords[WorkPool] = NamedRecords(POOL_KIND, WorkPool)
queues: NamedRecords[WorkQueue] = NamedRecords(QUEUE_KIND, WorkQueue)
workers: NamedRecords[Worker] = NamedRecords(WORKER_KIND, Worker)


def _child(pool: str, name: str) -> str:
    return f"{pool}/{name}"


# ----------------------------------------------------------------------------- pools


def get_pool(name: str) -> WorkPool | None:
    return pools.get(name)


def get_pools(names: Iterable[str]) -> dict[str, WorkPool]:
    return {p.name: p for p in pools.get_many(sorted(set(names)))}


def create_pool(pool: WorkPool, default_queue: WorkQueue) -> bool:
    """Store the pool and its default queue unless the name is taken; True if stored."""
    if not pools.create(pool.name, pool):
        return False
    queues.put(_child(pool.name, default_queue.name), default_queue)
    return True


def save_pool(pool: WorkPool) -> None:
    pools.put(pool.name, pool)


def list_pools(limit: int | None = None, offset: int = 0) -> list[WorkPool]:
    return pools.all(limit=limit, offset=offset)


def delete_pool(name: str) -> bool:
    """Delete the pool with its queues, worker records, slot sets and wake-up lists.

    Runs already queued stay in their RQ queues: a pool created again with the same name
    delivers them.
    """
    queue_names = [q.name for q in list_queues(name)]
    with translate_errors():
        pipe = get_redis().pipeline(transaction=True)
        for queue in queue_names:
            pipe.delete(keys.record(QUEUE_KIND, _child(name, queue)))
            pipe.zrem(keys.record_index(QUEUE_KIND), _child(name, queue))
            pipe.delete(keys.slot_queue(name, queue), keys.queue_bell(name, queue))
        for worker in workers.names(prefix=f"{name}/"):
            pipe.delete(keys.record(WORKER_KIND, worker))
            pipe.zrem(keys.record_index(WORKER_KIND), worker)
        pipe.delete(keys.slot_pool(name), keys.pool_waiting(name), keys.pool_hooks(name))
        pipe.execute()
    return pools.delete(name)


# ----------------------------------------------------------------------------- queues


def get_queue(pool: str, name: str) -> WorkQueue | None:
    return queues.get(_child(pool, name))


def get_queues(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], WorkQueue]:
    found = queues.get_many(sorted({_child(p, q) for p, q in pairs}))
    return {(q.work_pool_name, q.name): q for q in found}


def create_queue(queue: WorkQueue) -> bool:
    return queues.create(_child(queue.work_pool_name, queue.name), queue)


def save_queue(queue: WorkQueue) -> None:
    queues.put(_child(queue.work_pool_name, queue.name), queue)


def delete_queue(pool: str, name: str) -> bool:
    with translate_errors():
        get_redis().delete(keys.slot_queue(pool, name), keys.queue_bell(pool, name))
    return queues.delete(_child(pool, name))


def list_queues(pool: str) -> list[WorkQueue]:
    """The pool's queues in priority order (lower number first, then by name)."""
    found = queues.all(prefix=f"{pool}/")
    return sorted(found, key=lambda q: (q.priority, q.name))


# ----------------------------------------------------------------------------- workers


def save_worker(worker: Worker) -> None:
    workers.put(_child(worker.work_pool_name, worker.name), worker)


def get_worker(pool: str, name: str) -> Worker | None:
    return workers.get(_child(pool, name))


def list_workers(pool: str | None = None) -> list[Worker]:
    return workers.all(prefix=f"{pool}/" if pool else "")


def delete_worker(pool: str, name: str) -> bool:
    return workers.delete(_child(pool, name))


# ----------------------------------------------------------------------------- usage


def slot_holders(slot_keys: Sequence[str]) -> list[int]:
    """How many runs hold a slot in each of ``slot_keys``."""
    if not slot_keys:
        return []
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for key in slot_keys:
            pipe.zcard(key)
        return [int(n) for n in pipe.execute()]


def queue_usage(pool: str, queue_names: Sequence[str]) -> list[tuple[int, int]]:
    """``(queued, holding a slot)`` for each named queue of the pool."""
    if not queue_names:
        return []
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for queue in queue_names:
            pipe.llen(keys.pool_queue_ready(pool, queue))
            pipe.zcard(keys.slot_queue(pool, queue))
        raw: list[Any] = pipe.execute()
    return [(int(raw[i]), int(raw[i + 1])) for i in range(0, len(raw), 2)]


def waiting_count(pool: str) -> int:
    with translate_errors():
        return int(get_redis().zcard(keys.pool_waiting(pool)))
