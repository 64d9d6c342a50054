"""Which run is "current" for logging, and whether its run logs are switched off.

``disable_run_logger()`` works both ways the seeds use it:

- ``with disable_run_logger(): ...`` silences run loggers for the block, in this thread or
  asyncio task and in work it starts with a copied context (task runner threads);
- ``disable_run_logger()`` called as a plain statement inside a run silences that run's
  logs from there to its end; the enclosing run logs normally again afterwards.

The switch is a ``ContextVar`` (never ``Logger.disabled``, which is process-wide), so one
quiet task does not mute its siblings running in other threads.
"""

from __future__ import annotations

import contextvars
from types import TracebackType
from typing import Any

from prefect_lite.context import FlowRunContext, TaskRunContext

_EVERYWHERE = "everywhere"
# Scopes whose run logs are off: the _EVERYWHERE marker (inside a ``with`` block) and/or
# the run context objects that called ``disable_run_logger()`` as a statement.
_disabled: contextvars.ContextVar[frozenset[Any]] = contextvars.ContextVar(
    "prefect_lite_run_logs_disabled", default=frozenset()
)


def current_run_context() -> FlowRunContext | TaskRunContext | None:
    """The innermost run: the task run, unless a subflow runs inside that task."""
    flow_ctx = FlowRunContext.get()
    task_ctx = TaskRunContext.get()
    if task_ctx is None:
        return flow_ctx
    if (
        flow_ctx is not None
        and flow_ctx.flow_run is not None
        and task_ctx.task_run is not None
        and flow_ctx.flow_run.id != getattr(task_ctx.task_run, "flow_run_id", None)
    ):
        return flow_ctx  # a subflow called from inside a task
    return task_ctx


def run_logs_disabled() -> bool:
    """True when run loggers are switched off for the code running now."""
    scopes = _disabled.get()
    if not scopes:
        return False
    return _EVERYWHERE in scopes or current_run_context() in scopes


def run_logs_disabled_everywhere() -> bool:
    return _EVERYWHERE in _disabled.get()


class disable_run_logger:  # a function-like name, as in Prefect
    """Switch run loggers off: as a ``with`` block, or for the rest of the current run."""

    def __init__(self) -> None:
        self._tokens: list[contextvars.Token[frozenset[Any]]] = []
        run = current_run_context()
        if run is not None:
            self._tokens.append(_disabled.set(_disabled.get() | {run}))

    def __enter__(self) -> disable_run_logger:
        self._tokens.append(_disabled.set(_disabled.get() | {_EVERYWHERE}))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while self._tokens:
            _disabled.reset(self._tokens.pop())
