"""Log handlers."""

from __future__ import annotations

import uuid

from prefect_lite.api.registry import operation
from prefect_lite.schemas import Log, check_paging
from prefect_lite.storage import logs as log_store


@operation("POST", "/logs/", status_code=201, tag="logs", role="worker")
def create_logs(logs: list[Log]) -> int:
    return log_store.append_logs(logs)


@operation("POST", "/logs/filter", tag="logs", role="read")
def read_logs(
    flow_run_id: uuid.UUID,
    offset: int = 0,
    limit: int = 1000,
    task_run_id: uuid.UUID | None = None,
    min_level: int = 0,
) -> list[Log]:
    """Logs of a flow run, oldest first, from position ``offset``: at most ``limit``
    (1..10,000) of them."""
    check_paging(limit, offset)
    return log_store.read_logs(flow_run_id, offset, limit, task_run_id, min_level)
