"""The engine's calls into optional SDK companions: run logging and print capture.

``prefect_lite.logging`` is imported lazily (and only if present), so the engine works
without it and ``import prefect_lite.flows`` stays cheap.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

FLOW_RUN_LOGGER = "prefect_lite.flow_runs"
TASK_RUN_LOGGER = "prefect_lite.task_runs"


@cache
def _logging_module() -> Any:
    try:
        import prefect_lite.logging as module
    except ImportError:  # pragma: no cover - the logging package is part of the SDK
        return None
    return module


def enable_print_capture() -> None:
    """Make ``print`` inside runs with ``log_prints`` go to the run logger."""
    module = _logging_module()
    if module is not None:
        module.install_print_hook()


def flow_logger(flow_run: Any, flow: Any) -> logging.LoggerAdapter[logging.Logger] | logging.Logger:
    module = _logging_module()
    if module is None:
        return logging.getLogger(FLOW_RUN_LOGGER)
    adapter: logging.LoggerAdapter[logging.Logger] = module.flow_run_logger(flow_run, flow)
    return adapter


def task_logger(task_run: Any, task: Any) -> logging.LoggerAdapter[logging.Logger] | logging.Logger:
    module = _logging_module()
    if module is None:
        return logging.getLogger(TASK_RUN_LOGGER)
    adapter: logging.LoggerAdapter[logging.Logger] = module.task_run_logger(task_run, task)
    return adapter


_task_run_logger = logging.getLogger(TASK_RUN_LOGGER)
_configured = False


def task_logging_enabled(level: int) -> bool:
    """Cheap check before building a task run logger on the hot path."""
    global _configured
    if not _configured:
        module = _logging_module()
        if module is not None:
            module.setup_logging()
        _configured = True
    return _task_run_logger.isEnabledFor(level)


def flush_logs(timeout: float = 10.0) -> None:
    module = _logging_module()
    if module is not None:
        module.flush_logs(timeout)
