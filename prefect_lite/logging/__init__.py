"""Logging for flows and tasks.

- ``get_run_logger()``: the current run's logger; records carry the run's ids and go to
  the console and, in batches off the hot path, to the store (``read_logs`` on a client).
- ``get_logger(name)``: a ``prefect_lite.*`` logger for code outside runs (console only).
- ``disable_run_logger()``: a ``with`` block, or a statement that quiets the rest of a run.
- ``LogEavesdropper``: capture one logger's records during a block.
- ``log_prints_context`` / ``print_as_log``: ``print()`` to the run logger (``log_prints``).
- ``flush_logs(timeout)``: wait until the records emitted so far are stored.
"""

from prefect_lite.logging.configuration import (
    FLOW_RUN_LOGGER_NAME,
    ROOT_LOGGER_NAME,
    TASK_RUN_LOGGER_NAME,
    setup_logging,
)
from prefect_lite.logging.handlers import APILogHandler
from prefect_lite.logging.loggers import (
    LogEavesdropper,
    RunLoggerAdapter,
    flow_run_logger,
    get_logger,
    get_run_logger,
    task_run_logger,
)
from prefect_lite.logging.prints import install_print_hook, log_prints_context, print_as_log
from prefect_lite.logging.scope import disable_run_logger
from prefect_lite.logging.shipper import flush_logs

__all__ = [
    "APILogHandler",
    "FLOW_RUN_LOGGER_NAME",
    "LogEavesdropper",
    "ROOT_LOGGER_NAME",
    "RunLoggerAdapter",
    "TASK_RUN_LOGGER_NAME",
    "disable_run_logger",
    "flow_run_logger",
    "flush_logs",
    "get_logger",
    "get_run_logger",
    "install_print_hook",
    "log_prints_context",
    "print_as_log",
    "setup_logging",
    "task_run_logger",
]
