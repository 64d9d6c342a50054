"""Flow records: one per flow name, with an id derived from the name.

Each process remembers the flow records it created or found (``create_flow`` is on every
run's path), at most ``KNOWN_FLOWS`` of them, least recently used forgotten first: a
server asked to create runs of ever new flow names keeps a bounded cache.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from prefect_lite.api.registry import operation
from prefect_lite.api.text_limits import check_length, check_tags
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.schemas import Flow, check_paging
from prefect_lite.storage.records import NamedRecords

FLOW_NAMESPACE = uuid.UUID("5d1e7a3e-57b1-4b59-9a55-3c2f5a0b8f11")
flows: NamedRecords[Flow] = NamedRecords("flow", Flow)
KNOWN_FLOWS = 1024
_known: OrderedDict[str, Flow] = OrderedDict()
_known_lock = threading.Lock()


def flow_id_for(name: str) -> uuid.UUID:
    """Flow ids are derived from the name, so every process agrees without a lookup."""
    return uuid.uuid5(FLOW_NAMESPACE, name)


@operation("POST", "/flows/", tag="flows", role="worker")
def create_flow(name: str, tags: list[str] | None = None) -> Flow:
    """Create the flow record if absent; return it (idempotent)."""
    check_length(name, "flow name")
    tags = check_tags(tags, "flow tags")
    with _known_lock:
        cached = _known.get(name)
        if cached is not None:
            _known.move_to_end(name)
            return cached
    record = Flow(id=flow_id_for(name), name=name, tags=tags)
    if not flows.create(name, record):
        record = flows.get(name) or record
    else:
        flows.set_alias(str(record.id), name)
    with _known_lock:
        _known[name] = record
        while len(_known) > KNOWN_FLOWS:
            _known.popitem(last=False)
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
