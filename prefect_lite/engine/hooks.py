"""State hooks: ``on_completion``, ``on_failure``, ... called with the final state.

Flow hooks get ``(flow, flow_run, state)``, task hooks ``(task, task_run, state)``. A hook
that raises is logged and does not change the run's outcome (as in Prefect); a hook that
returns a coroutine is run to completion.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_lite.states import State

FLOW_HOOKS = ("on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running")
TASK_HOOKS = ("on_completion", "on_failure", "on_running")

# Keyed by state type value (StateType is a str enum), so this module imports no models.
_BY_TYPE = {
    "COMPLETED": "on_completion",
    "FAILED": "on_failure",
    "CANCELLED": "on_cancellation",
    "CANCELLING": "on_cancellation",
    "CRASHED": "on_crashed",
    "RUNNING": "on_running",
}


def hook_kind(state: State) -> str | None:
    return _BY_TYPE.get(state.type)


def check_hooks(value: Any, option: str, owner: str) -> list[Callable[..., Any]]:
    """A list of callables, or a clear error at declaration time."""
    from prefect_lite.exceptions import DefinitionError, NotCallableError

    if value is None:
        return []
    if callable(value):
        value = [value]
    try:
        hooks = list(value)
    except TypeError:
        raise DefinitionError(
            f"{owner}: {option} must be a list of callables, got {type(value).__name__}"
        ) from None
    for hook in hooks:
        if not callable(hook):
            raise NotCallableError(
                f"{owner}: {option} must contain callables, got {type(hook).__name__} {hook!r}"
            )
    return hooks


def run_hooks(
    hooks: Sequence[Callable[..., Any]],
    args: tuple[Any, ...],
    state: State,
    logger: Callable[[], logging.Logger | logging.LoggerAdapter[logging.Logger]],
) -> None:
    for hook in hooks:
        name = getattr(hook, "__name__", repr(hook))
        try:
            outcome = hook(*args)
            if inspect.iscoroutine(outcome):
                _run_coroutine(outcome)
        except Exception:
            logger().error(
                "An error was encountered while running hook %r (state %s)",
                name,
                state.name,
                exc_info=True,
            )


def _run_coroutine(coro: Any) -> None:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    # Inside a running loop (async run): run the hook in a helper thread's own loop.
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="prefect_lite-hook")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
