"""Logger names and the one-time setup of the ``prefect_lite`` logger tree.

``setup_logging()`` runs once per process (``get_logger`` and ``get_run_logger`` call it):
the ``prefect_lite`` logger gets a console handler on stderr and the level from the
``logging_level`` setting; the two run loggers also get the handler that ships records to
the store. ``prefect_lite`` does not propagate to the root logger, so an application that
configured logging itself does not see every line twice; capture our records with
``LogEavesdropper`` (or add a handler to ``prefect_lite``).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

from prefect_lite._text import visible
from prefect_lite.settings import get_settings

ROOT_LOGGER_NAME = "prefect_lite"
FLOW_RUN_LOGGER_NAME = "prefect_lite.flow_runs"
TASK_RUN_LOGGER_NAME = "prefect_lite.task_runs"
RUN_LOGGER_NAMES = (FLOW_RUN_LOGGER_NAME, TASK_RUN_LOGGER_NAME)

_DATE_FORMAT = "%H:%M:%S"
_PREFIX = "%(asctime)s.%(msecs)03d | %(levelname)-7s | "
STANDARD_FORMAT = _PREFIX + "%(name)s - %(message)s"
FLOW_RUN_FORMAT = _PREFIX + "Flow run %(flow_run_name)r - %(message)s"
TASK_RUN_FORMAT = _PREFIX + "Task run %(task_run_name)r - %(message)s"


class RunAwareFormatter(logging.Formatter):
    """Prefect's console layout: ``12:00:01.123 | INFO    | Flow run 'name' - message``.

    Records of a task run name the task run, records of a flow run the flow run, anything
    else the logger.
    """

    def __init__(self) -> None:
        super().__init__(STANDARD_FORMAT, _DATE_FORMAT)
        self._flow = logging.Formatter(FLOW_RUN_FORMAT, _DATE_FORMAT)
        self._task = logging.Formatter(TASK_RUN_FORMAT, _DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The line, its control characters but line breaks and tabs made visible (a
        message may carry a run's parameters, which anyone allowed to trigger it chose)."""
        if getattr(record, "task_run_name", None):
            return visible(self._task.format(record), keep_lines=True)
        if getattr(record, "flow_run_name", None):
            return visible(self._flow.format(record), keep_lines=True)
        return visible(super().format(record), keep_lines=True)


class VisibleFormatter(logging.Formatter):
    """A plain formatter whose lines show control characters (but line breaks and tabs)
    as escapes, for consoles that print names and messages from the store."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record), keep_lines=True)


class ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (so redirection and
    test capture work)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


_lock = threading.Lock()
_configured = False


def setup_logging(force: bool = False) -> None:
    """Configure the ``prefect_lite`` loggers once (again with ``force=True``, e.g. after
    the ``logging_level`` setting changed)."""
    global _configured
    if _configured and not force:
        return
    from prefect_lite.logging.handlers import APILogHandler, RunLogsEnabledFilter

    with _lock:
        if _configured and not force:
            return
        root = logging.getLogger(ROOT_LOGGER_NAME)
        root.setLevel(get_settings().logging_level)
        root.propagate = False
        if not any(isinstance(h, ConsoleHandler) for h in root.handlers):
            console = ConsoleHandler()
            console.setFormatter(RunAwareFormatter())
            root.addHandler(console)
        for name in RUN_LOGGER_NAMES:
            logger = logging.getLogger(name)
            logger.setLevel(logging.NOTSET)
            if not any(isinstance(h, APILogHandler) for h in logger.handlers):
                logger.addHandler(APILogHandler())
            if not any(isinstance(f, RunLogsEnabledFilter) for f in logger.filters):
                logger.addFilter(RunLogsEnabledFilter())
        _configured = True
