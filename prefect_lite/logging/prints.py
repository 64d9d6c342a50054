"""``log_prints``: ``print()`` inside a run goes to the run logger at INFO.

``builtins.print`` is replaced once, for the life of the process, by ``print_as_log``; a
``ContextVar`` decides per run (and per thread, asyncio task) whether a call is redirected,
so concurrent runs with different ``log_prints`` never swap ``print`` under each other.
The engine enters ``log_prints_context(flow.log_prints or task.log_prints)`` around each
run body. Prints with ``file=`` other than stdout are left alone, as are prints while run
logs are disabled (they are shown as usual rather than lost).
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import io
import sys
import threading
from collections.abc import Iterator
from typing import Any

from prefect_lite.logging.scope import current_run_context, run_logs_disabled

_builtin_print = builtins.print
# None: not decided by the engine, so follow the run context's ``log_prints`` flag.
_log_prints: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "prefect_lite_log_prints", default=None
)
_install_lock = threading.Lock()
_installed = False


def _redirect_wanted() -> bool:
    enabled = _log_prints.get()
    if enabled is None:
        run = current_run_context()
        enabled = bool(run is not None and run.log_prints)
    return enabled


def print_as_log(*args: Any, **kwargs: Any) -> None:
    """``print`` that sends its text to the current run's logger when ``log_prints`` is on;
    otherwise (no run, flag off, ``file=`` not stdout, run logs disabled) a plain print."""
    target = kwargs.get("file")
    if (
        (target is not None and target is not sys.stdout)
        or not _redirect_wanted()
        or current_run_context() is None
        or run_logs_disabled()
    ):
        _builtin_print(*args, **kwargs)
        return
    from prefect_lite.logging.loggers import get_run_logger

    buffer = io.StringIO()
    _builtin_print(*args, **{**kwargs, "file": buffer, "flush": False})
    get_run_logger().info(buffer.getvalue().rstrip("\n"), stacklevel=2)


def install_print_hook() -> None:
    """Replace ``builtins.print`` with ``print_as_log`` (once; idempotent)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if not _installed:
            builtins.print = print_as_log
            _installed = True


@contextlib.contextmanager
def log_prints_context(enabled: bool | None) -> Iterator[None]:
    """Redirect (``True``) or do not redirect (``False``) prints in this block; ``None``
    follows the run context's ``log_prints``."""
    if enabled:
        install_print_hook()
    token = _log_prints.set(enabled)
    try:
        yield
    finally:
        _log_prints.reset(token)
