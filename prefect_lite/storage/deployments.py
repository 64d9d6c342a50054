"""Deployment records, addressed by ``flow-name/deployment-name`` and by id.

A deployment is a named record (``NamedRecords``) whose name is its full name, plus an
id -> name alias. Saving also tells the scheduler: the deployment goes to the front of the
planning index and its overlap policy into the admission hash - all in one MULTI, so a
reader never sees the record without its indexes (nothing half-written).
"""

from __future__ import annotations

import uuid

from prefect_lite.schemas import Deployment
from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis, translate_errors
from prefect_lite.storage.records import NamedRecords

KIND = "deployment"
records: NamedRecords[Deployment] = NamedRecords(KIND, Deployment)


def get_by_name(full_name: str) -> Deployment | None:
    return records.get(full_name)


def get_by_id(deployment_id: uuid.UUID | str) -> Deployment | None:
    name = records.resolve_alias(str(deployment_id))
    return records.get(name) if name else None


def get_many_by_id(deployment_ids: list[str]) -> dict[str, Deployment]:
    """Deployments by id (missing ones left out), in two round trips."""
    if not deployment_ids:
        return {}
    with translate_errors():
        names = get_redis().mget([keys.record_alias(KIND, i) for i in deployment_ids])
    found = records.get_many([str(n) for n in names if n])
    return {str(d.id): d for d in found}


def list_deployments(
    prefix: str = "", limit: int | None = None, offset: int = 0
) -> list[Deployment]:
    """Deployments by full name; ``prefix`` is a full-name prefix (e.g. ``"etl/"``)."""
    return records.all(prefix=prefix, limit=limit, offset=offset)


def save(deployment: Deployment) -> None:
    """Create or replace the record; the scheduler re-plans it at its next tick."""
    name, dep_id = deployment.full_name, str(deployment.id)
    with translate_errors():
        pipe = get_redis().pipeline(transaction=True)
        pipe.set(keys.record(KIND, name), deployment.model_dump_json())
        pipe.zadd(keys.record_index(KIND), {name: 0})
        pipe.set(keys.record_alias(KIND, dep_id), name)
        pipe.zadd(keys.plan_index(), {dep_id: 0})
        if deployment.overlap == "allow":
            pipe.hdel(keys.deployment_overlap(), dep_id)
        else:
            pipe.hset(keys.deployment_overlap(), dep_id, deployment.overlap)
        pipe.execute()


def remove(deployment: Deployment) -> bool:
    """Delete the record and every scheduler index entry of it; True if it existed."""
    name, dep_id = deployment.full_name, str(deployment.id)
    with translate_errors():
        pipe = get_redis().pipeline(transaction=True)
        pipe.delete(keys.record(KIND, name))
        pipe.zrem(keys.record_index(KIND), name)
        pipe.delete(keys.record_alias(KIND, dep_id))
        pipe.zrem(keys.plan_index(), dep_id)
        pipe.hdel(keys.plan_state(), dep_id)
        pipe.hdel(keys.deployment_overlap(), dep_id)
        deleted = pipe.execute()[0]
    return bool(deleted)
