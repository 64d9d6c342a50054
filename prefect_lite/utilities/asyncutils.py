"""``sync_compatible``: one function for sync callers and ``await`` in async code.

Functions Prefect makes async (``send_input``, ``pause_flow_run``...) do blocking client
calls here. Called from async code they return an awaitable that runs the call in a
worker thread (the event loop is never blocked, the run contexts go along); called from
sync code they just run. "Async code" means: inside an async task run or async flow run
(the run's function decides, so a sync task of an async flow runs sync), else any thread
with a running event loop. As in Prefect, an async caller must ``await`` the result.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from prefect_lite.context import FlowRunContext, TaskRunContext

F = TypeVar("F", bound=Callable[..., Any])


def in_async_context() -> bool:
    """True where the caller is async code (see the module docstring)."""
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task is not None:
        return bool(getattr(task_ctx.task, "isasync", False))
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow is not None and not flow_ctx.detached:
        return bool(getattr(flow_ctx.flow, "isasync", False))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def dispatch(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` now, or an awaitable of it when the caller is async."""
    if in_async_context():
        return asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def sync_compatible(fn: F) -> F:
    """Decorate a sync function so async callers can (and must) ``await`` it.

    ``fn.sync`` is the undecorated function, for callers that always want it run now.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return dispatch(fn, *args, **kwargs)

    wrapper.sync = fn  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
