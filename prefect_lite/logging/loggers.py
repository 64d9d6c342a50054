"""Loggers users call: ``get_logger``, ``get_run_logger`` and ``LogEavesdropper``.

A run logger is a ``LoggerAdapter`` over ``prefect_lite.flow_runs`` or
``prefect_lite.task_runs`` that stamps every record with the run's ids and names
(``flow_run_id``, ``task_run_id``, ``flow_run_name``, ``task_run_name``, ``flow_name``,
``task_name``; ids as strings, ``None`` where they do not apply). The ids are captured when
the logger is made, so a logger handed to another thread still logs under its run.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from functools import lru_cache
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prefect_lite.context import ContextModel, FlowRunContext, TaskRunContext
from prefect_lite.exceptions import MissingContextError
from prefect_lite.logging.configuration import (
    FLOW_RUN_LOGGER_NAME,
    ROOT_LOGGER_NAME,
    TASK_RUN_LOGGER_NAME,
    setup_logging,
)
from prefect_lite.logging.scope import (
    current_run_context,
    run_logs_disabled,
    run_logs_disabled_everywhere,
)

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter


class RunLoggerAdapter(_Adapter):
    """Adds the run's fields to each record; ``extra=`` of a call is merged in, not lost."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs

    def isEnabledFor(self, level: int) -> bool:
        return not run_logs_disabled() and self.logger.isEnabledFor(level)

    def getChild(self, suffix: str) -> RunLoggerAdapter:
        return RunLoggerAdapter(self.logger.getChild(suffix), dict(self.extra or {}))


class _SilentRunLogger(RunLoggerAdapter):
    """What ``get_run_logger()`` returns outside a run inside ``disable_run_logger()``."""

    def isEnabledFor(self, level: int) -> bool:
        return False


@lru_cache(maxsize=512)
def get_logger(name: str | None = None) -> logging.Logger:
    """A logger under ``prefect_lite`` (``get_logger("x")`` is ``prefect_lite.x``; full
    names such as ``prefect_lite.x`` are kept). Not shipped to the store: use
    ``get_run_logger`` for run logs."""
    setup_logging()
    if not name or name == ROOT_LOGGER_NAME:
        return logging.getLogger(ROOT_LOGGER_NAME)
    if name.startswith(ROOT_LOGGER_NAME + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{ROOT_LOGGER_NAME}.{name}")


def get_run_logger(
    name: str | None = None, context: ContextModel | None = None, **kwargs: Any
) -> RunLoggerAdapter:
    """The logger of the current task run, else of the current flow run.

    ``name`` makes a child logger (``prefect_lite.flow_runs.<name>``); ``context`` picks a
    specific ``FlowRunContext``/``TaskRunContext``; other keyword arguments are added to
    every record. Raises ``MissingContextError`` outside a run (unless run logs are
    disabled, then a logger that drops everything is returned).
    """
    if isinstance(name, ContextModel):  # Prefect's first positional argument is context
        name, context = None, name
    if context is not None and not isinstance(context, FlowRunContext | TaskRunContext):
        raise TypeError(
            f"context must be a FlowRunContext or TaskRunContext, not {type(context).__name__}"
        )
    run = context or current_run_context()
    if isinstance(run, TaskRunContext):
        adapter = task_run_logger(run.task_run, run.task, **kwargs)
    elif isinstance(run, FlowRunContext):
        adapter = flow_run_logger(run.flow_run, run.flow, **kwargs)
    elif run_logs_disabled_everywhere():
        return _SilentRunLogger(logging.getLogger(FLOW_RUN_LOGGER_NAME), {})
    else:
        raise MissingContextError(
            "get_run_logger() was called outside of a flow or task run; there is no run to "
            "log for. Use prefect_lite.logging.get_logger(name) for logs outside runs."
        )
    return adapter.getChild(name) if name else adapter


def flow_run_logger(flow_run: Any, flow: Any = None, **kwargs: Any) -> RunLoggerAdapter:
    """A logger for ``flow_run`` without needing its context (the engine uses this)."""
    setup_logging()
    fields = {
        "flow_run_id": _id(getattr(flow_run, "id", None)),
        "task_run_id": None,
        "flow_run_name": getattr(flow_run, "name", None),
        "task_run_name": None,
        "flow_name": getattr(flow, "name", None) or getattr(flow_run, "flow_name", None),
        "task_name": None,
    }
    return RunLoggerAdapter(logging.getLogger(FLOW_RUN_LOGGER_NAME), {**fields, **kwargs})


def task_run_logger(
    task_run: Any, task: Any = None, flow_run: Any = None, flow: Any = None, **kwargs: Any
) -> RunLoggerAdapter:
    """A logger for ``task_run``; flow fields come from the arguments or the flow context."""
    setup_logging()
    if flow_run is None or flow is None:
        flow_ctx = FlowRunContext.get()
        if flow_ctx is not None:
            flow_run = flow_run or flow_ctx.flow_run
            flow = flow or flow_ctx.flow
    fields = {
        "flow_run_id": _id(getattr(task_run, "flow_run_id", None)),
        "task_run_id": _id(getattr(task_run, "id", None)),
        "flow_run_name": getattr(flow_run, "name", None),
        "task_run_name": getattr(task_run, "name", None),
        "flow_name": getattr(flow, "name", None),
        "task_name": getattr(task, "name", None),
    }
    return RunLoggerAdapter(logging.getLogger(TASK_RUN_LOGGER_NAME), {**fields, **kwargs})


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


class LogEavesdropper(logging.Handler):
    """Collects the records of one logger (and its children) during a ``with`` block.

    ``text()`` joins them as ``[LEVEL]: message`` lines; ``get_logs()`` returns the
    ``LogRecord`` objects. ``level`` (when given) is also set on the logger for the block,
    so lower-level records are emitted; by default the logger's own level applies.
    """

    def __init__(self, eavesdrop_on: str | logging.Logger, level: int = logging.NOTSET) -> None:
        super().__init__(level=level)
        self.eavesdrop_on = (
            eavesdrop_on.name if isinstance(eavesdrop_on, logging.Logger) else eavesdrop_on
        )
        self._records: list[logging.LogRecord] = []
        self._target: logging.Logger | None = None
        self._original_level = logging.NOTSET
        self.setFormatter(logging.Formatter("[%(levelname)s]: %(message)s"))

    def __enter__(self) -> LogEavesdropper:
        if self.eavesdrop_on.startswith(ROOT_LOGGER_NAME):
            setup_logging()  # so set-up later cannot reset the level chosen here
        self._target = logging.getLogger(self.eavesdrop_on)
        self._original_level = self._target.level
        if self.level != logging.NOTSET:
            self._target.setLevel(self.level)
        self._records = []
        self._target.addHandler(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._target is not None:
            self._target.removeHandler(self)
            self._target.setLevel(self._original_level)
            self._target = None

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)

    def get_logs(self) -> list[logging.LogRecord]:
        """The records collected so far, oldest first."""
        return list(self._records)

    def text(self) -> str:
        """The collected records as ``[LEVEL]: message`` lines joined by newlines."""
        return "\n".join(self.format(record) for record in self._records)
