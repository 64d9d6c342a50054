"""Run logs: one Redis list per flow run, appended in batches, read in order."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

from prefect_lite.schemas import Log
from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis, translate_errors


def append_logs(logs: Iterable[Log]) -> int:
    """Append logs to their flow runs' lists in one pipeline; returns how many were stored."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for log in logs:
        if log.flow_run_id is not None:
            grouped[str(log.flow_run_id)].append(log.model_dump_json())
    if not grouped:
        return 0
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for run_id, rows in grouped.items():
            pipe.rpush(keys.flow_run_logs(run_id), *rows)
        pipe.execute()
    return sum(len(rows) for rows in grouped.values())


def read_logs(
    flow_run_id: uuid.UUID | str,
    offset: int = 0,
    limit: int = 1000,
    task_run_id: uuid.UUID | str | None = None,
    min_level: int = 0,
) -> list[Log]:
    """Logs of a flow run, oldest first, starting at position ``offset``."""
    with translate_errors():
        rows = get_redis().lrange(keys.flow_run_logs(str(flow_run_id)), offset, offset + limit - 1)
    out = [Log.model_validate_json(row) for row in rows]
    if task_run_id is not None:
        out = [log for log in out if str(log.task_run_id) == str(task_run_id)]
    if min_level:
        out = [log for log in out if log.level >= min_level]
    return out


def count_logs(flow_run_id: uuid.UUID | str) -> int:
    with translate_errors():
        return int(get_redis().llen(keys.flow_run_logs(str(flow_run_id))))
