"""The seam where results persistence, caching and transactions plug into the engine.

Before running a task, the engine computes its cache key (``compute_cache_key``:
``cache_key_fn(context, parameters)`` or ``cache_policy.compute_key(...)``; inside a
keyed transaction a task without one gets the transaction's replay key) and asks the
``ResultHooks`` for a cached state under it. After a success it offers the value to
``persist``, which stores it if needed and returns a ``ResultRef`` (the state's data:
what the stored state records). A task run that fails for good inside a transaction is
reported with ``task_failed`` (the transaction rolls back).

A key function or policy that raises is not swallowed: the task run fails with that
error, rather than running uncached or caching under a broader key.

``prefect_lite.results`` registers the default hooks when imported (the first time the
engine needs them); ``register_result_hooks`` swaps in others (tests), None restores the
default.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from prefect_lite.context import FlowRunContext
from prefect_lite.states import ResultRef, State


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
_default: ResultHooks | None = None
_get_transaction: Callable[[], Any] | None = None


def register_result_hooks(hooks: ResultHooks | None) -> None:
    """Use ``hooks`` instead of the default ones (None: back to the default)."""
    global _hooks
    _hooks = hooks


def register_default_hooks(hooks: ResultHooks) -> None:
    global _default
    _default = hooks


def result_hooks() -> ResultHooks | None:
    if _hooks is not None:
        return _hooks
    if _default is None:
        importlib.import_module("prefect_lite.results")  # registers the default hooks
    return _default


def current_transaction() -> Any:
    """The innermost transaction of this context, or None (imports transactions lazily)."""
    global _get_transaction
    if _get_transaction is None:
        from prefect_lite.transactions import get_transaction

        _get_transaction = get_transaction
    return _get_transaction()


def in_transaction() -> bool:
    return current_transaction() is not None


def wants_cache_key(task: Any) -> bool:
    return task.cache_key_fn is not None or _policy(task) is not None or in_transaction()


def compute_cache_key(task: Any, context: Any, parameters: dict[str, Any]) -> str | None:
    """The run's cache key, or None (no key, or ``persist_result=False``). Raises what the
    key function or policy raised."""
    if task.persist_result is False:
        return None
    if task.cache_key_fn is not None:
        key = task.cache_key_fn(context, parameters)
    else:
        policy = _policy(task)
        key = None
        if policy is not None:
            flow_ctx = FlowRunContext.get()
            flow_parameters = flow_ctx.parameters if flow_ctx is not None else {}
            key = policy.compute_key(
                task_ctx=context, inputs=parameters, flow_parameters=flow_parameters or {}
            )
    if key is not None:
        return str(key)
    if in_transaction():
        from prefect_lite.results.cache import transaction_replay_key

        return transaction_replay_key(task, parameters)
    return None


def persist_flow_result(flow: Any, state: State) -> State:
    """A flow run's completed state with its value stored, if ``persist_result`` is set."""
    if not flow.persist_result:
        return state
    hooks = result_hooks()
    persist = getattr(hooks, "persist_flow", None)
    if persist is not None:
        ref = persist(flow, state.data)
        if ref is not None:
            state.data = ref
    return state


def task_failed(task: Any) -> None:
    """A task run ended Failed: its transaction, if any, rolls back."""
    if in_transaction():
        hooks = result_hooks()
        report = getattr(hooks, "task_failed", None)
        if report is not None:
            report(task)


def _policy(task: Any) -> Any:
    """The task's cache policy; as in Prefect, ``persist_result=True`` with neither a policy
    nor a key function means the DEFAULT policy (inputs + source + run id), which is what
    lets a re-run of the same flow run (e.g. a resumed suspended run) reuse its results."""
    policy = getattr(task, "cache_policy", None)
    if policy is None and task.persist_result is True and task.cache_key_fn is None:
        from prefect_lite.cache_policies import DEFAULT

        return DEFAULT
    return policy if policy is not None and hasattr(policy, "compute_key") else None
