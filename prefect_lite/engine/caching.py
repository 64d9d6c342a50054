"""The seam where results persistence and caching plug into the task engine.

The engine computes a task run's cache key before running it (``cache_key_fn(context,
parameters)`` or ``cache_policy.compute_key(...)``), asks the registered ``ResultHooks``
for a cached state under that key, and after a success offers the value to ``persist``,
which may store it and return a ``ResultRef`` (recorded as the state's data).

Until a results module registers hooks (``register_result_hooks``), nothing is cached or
persisted: values live in memory for the duration of the run.
"""

from __future__ import annotations

import importlib
import logging
from datetime import datetime
from typing import Any, Protocol

from prefect_lite.states import ResultRef, State

logger = logging.getLogger("prefect_lite.engine.caching")


class ResultHooks(Protocol):
    """What ``prefect_lite.results`` provides to the engine."""

    def lookup(self, task: Any, cache_key: str, context: Any) -> State | None:
        """A completed state cached under ``cache_key`` (not expired), or None."""

    def persist(
        self,
        task: Any,
        value: Any,
        cache_key: str | None,
        expiration: datetime | None,
        context: Any,
    ) -> ResultRef | None:
        """Store ``value`` if the task's settings ask for it; where it went, or None."""


_hooks: ResultHooks | None = None
_looked_for_module = False


def register_result_hooks(hooks: ResultHooks | None) -> None:
    """Install (or, with None, remove) the results implementation."""
    global _hooks
    _hooks = hooks


def result_hooks() -> ResultHooks | None:
    global _looked_for_module
    if _hooks is None and not _looked_for_module:
        _looked_for_module = True
        try:  # importing the results module registers its hooks
            importlib.import_module("prefect_lite.results")
        except ImportError:
            pass
    return _hooks


def wants_cache_key(task: Any) -> bool:
    return task.cache_key_fn is not None or _policy(task) is not None


def compute_cache_key(task: Any, context: Any, parameters: dict[str, Any]) -> str | None:
    """The run's cache key, or None (no key function, or it failed: logged)."""
    try:
        if task.cache_key_fn is not None:
            key = task.cache_key_fn(context, parameters)
        else:
            policy = _policy(task)
            if policy is None:
                return None
            flow_ctx_params = getattr(getattr(context, "flow_run", None), "parameters", {})
            key = policy.compute_key(
                task_ctx=context, inputs=parameters, flow_parameters=flow_ctx_params or {}
            )
    except Exception:
        logger.exception("Error computing the cache key of task %r; not caching", task.name)
        return None
    return None if key is None else str(key)


def _policy(task: Any) -> Any:
    policy = getattr(task, "cache_policy", None)
    return policy if policy is not None and hasattr(policy, "compute_key") else None
