"""The handler that sends run log records to the store, and the run-logs switch filter.

``APILogHandler.emit`` does only the work that must happen in the logging thread (format
the message, read the run ids, keep JSON-able ``extra`` values) and hands a plain tuple to
the shipper, which builds ``schemas.Log`` records and writes them in batches from its own
thread. Records that belong to no flow run have nowhere to be stored and are skipped (the
console still shows them).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from prefect_lite.logging.scope import current_run_context, run_logs_disabled
from prefect_lite.logging.shipper import PendingLog, get_shipper

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
RUN_KEYS = (
    "flow_run_id",
    "task_run_id",
    "flow_run_name",
    "task_run_name",
    "flow_name",
    "task_name",
)
_NOT_EXTRA = _STANDARD_ATTRS | set(RUN_KEYS)


class RunLogsEnabledFilter(logging.Filter):
    """Drops records while ``disable_run_logger`` is in effect for the current run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not run_logs_disabled()


class APILogHandler(logging.Handler):
    """Queues run log records for the store; ``flush_logs()`` waits until they are there."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.addFilter(RunLogsEnabledFilter())
        # Message plus traceback, no decoration: the store keeps the fields separately.
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            flow_run_id, task_run_id = _run_ids(record)
            if flow_run_id is None:
                return
            item: PendingLog = (
                record.name,
                record.levelno,
                self.format(record),
                record.created,
                flow_run_id,
                task_run_id,
                _extra(record),
            )
        except Exception:
            self.handleError(record)
            return
        get_shipper().put(item)

    def flush(self) -> None:
        """Logging's ``flush`` is called at shutdown: wait briefly for pending records."""
        get_shipper().flush(timeout=1.0)


def _run_ids(record: logging.LogRecord) -> tuple[Any, Any]:
    """Ids attached by the run logger, else those of the run active in this thread."""
    flow_run_id = getattr(record, "flow_run_id", None)
    if flow_run_id is not None:
        return flow_run_id, getattr(record, "task_run_id", None)
    ctx = current_run_context()
    if ctx is None:
        return None, None
    if hasattr(ctx, "task_run"):
        task_run = ctx.task_run
        if task_run is None:
            return None, None
        return task_run.flow_run_id, task_run.id
    return (ctx.flow_run.id if ctx.flow_run is not None else None), None


def _extra(record: logging.LogRecord) -> dict[str, Any] | None:
    """The record's ``extra=`` values: JSON-able ones as a JSON copy, others as ``repr``."""
    keys = record.__dict__.keys() - _NOT_EXTRA
    if not keys:
        return None
    out: dict[str, Any] = {}
    for key in keys:
        value = record.__dict__[key]
        try:
            out[key] = orjson.loads(orjson.dumps(value))
        except TypeError:
            out[key] = repr(value)
    return out
