"""Flow records: one per flow name, with an id derived from the name."""

from __future__ import annotations

import uuid

from prefect_lite.api.registry import operation
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.schemas import Flow, check_paging
from prefect_lite.storage.records import NamedRecords

FLOW_NAMESPACE = uuid.UUID("5d1e7a3e-57b1-4b59-9a55-3c2f5a0b8f11")
flows: NamedRecords[Flow] = NamedRecords("flow", Flow)
_known: dict[str, Flow] = {}


def flow_id_for(name: str) -> uuid.UUID:
    """Flow ids are derived from the name, so every process agrees without a lookup."""
    return uuid.uuid5(FLOW_NAMESPACE, name)


@operation("POST", "/flows/", tag="flows", role="worker")
def create_flow(name: str, tags: list[str] | None = None) -> Flow:
    """Create the flow record if absent; return it (idempotent)."""
    cached = _known.get(name)
    if cached is not None:
        return cached
    record = Flow(id=flow_id_for(name), name=name, tags=tags or [])
    if not flows.create(name, record):
        record = flows.get(name) or record
    else:
        flows.set_alias(str(record.id), name)
    _known[name] = record
    return record


@operation("GET", "/flows/{flow_id}", tag="flows", role="read")
def read_flow(flow_id: uuid.UUID) -> Flow:
    name = flows.resolve_alias(str(flow_id))
    found = flows.get(name) if name else None
    if found is None:
        raise ObjectNotFound(f"no flow with id {flow_id}")
    return found


@operation("GET", "/flows/name/{name}", tag="flows", role="read")
def read_flow_by_name(name: str) -> Flow:
    found = flows.get(name)
    if found is None:
        raise ObjectNotFound(f"no flow named {name!r}")
    return found


@operation("POST", "/flows/filter", tag="flows", role="read")
def read_flows(name_prefix: str = "", limit: int = 200, offset: int = 0) -> list[Flow]:
    check_paging(limit, offset)
    return flows.all(prefix=name_prefix, limit=limit, offset=offset)
