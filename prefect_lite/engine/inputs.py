"""Task inputs: lineage of upstream runs, and resolution of futures/states to values.

``scan_inputs`` walks the parameters once when a task run is created: it finds futures
(to wait for), states and results produced by earlier task runs of the flow (lineage:
``task_inputs``), and says whether anything needs resolving. ``resolve`` replaces
futures and states with their results, honouring the annotations: ``quote`` (left
alone), ``allow_failure`` (a failed upstream gives its exception), ``opaque`` (resolve
the top level only) and ``unmapped`` (unwrapped). A failed upstream without
``allow_failure`` raises ``UpstreamTaskError``.

Only built-in collections are walked (list, tuple, set, frozenset, dict), as Prefect does
for the common case; other objects are passed as they are.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from prefect_lite.engine.scope import FlowRunScope
from prefect_lite.exceptions import UpstreamTaskError
from prefect_lite.futures import PrefectFuture
from prefect_lite.states import State, StateType
from prefect_lite.utilities.annotations import (
    BaseAnnotation,
    allow_failure,
    opaque,
    quote,
)

_ATOMIC = frozenset({int, float, str, bytes, bool, type(None), complex})
_COLLECTIONS = (list, tuple, set, frozenset, dict)


class Scan:
    """What ``scan_inputs`` found."""

    __slots__ = ("futures", "lineage", "needs_resolution")

    def __init__(self) -> None:
        self.lineage: dict[str, list[uuid.UUID]] = {}
        self.futures: list[PrefectFuture[Any]] = []
        self.needs_resolution = False


def scan_inputs(parameters: dict[str, Any], wait_for: Any, scope: FlowRunScope | None) -> Scan:
    scan = Scan()
    for name, value in parameters.items():
        if type(value) in _ATOMIC and scope is None:
            continue
        found: list[uuid.UUID] = []
        _scan(value, scan, found, scope)
        if found:
            scan.lineage[name] = list(dict.fromkeys(found))
    if wait_for is not None:
        found = []
        _scan(wait_for, scan, found, scope)
        scan.lineage["wait_for"] = list(dict.fromkeys(found))
    return scan


def _scan(value: Any, scan: Scan, found: list[uuid.UUID], scope: FlowRunScope | None) -> None:
    if scope is not None:
        producer = scope.producer_of(value)
        if producer is not None:
            found.append(producer)
    if type(value) in _ATOMIC:
        return
    if isinstance(value, PrefectFuture):
        scan.needs_resolution = True
        scan.futures.append(value)
        found.append(value.task_run_id)
    elif isinstance(value, State):
        scan.needs_resolution = True
        if value.state_details.task_run_id is not None:
            found.append(value.state_details.task_run_id)
    elif isinstance(value, BaseAnnotation):
        scan.needs_resolution = True
        if not isinstance(value, quote):
            _scan(value.value, scan, found, scope)
    elif isinstance(value, dict):
        for key, item in value.items():
            _scan(key, scan, found, scope)
            _scan(item, scan, found, scope)
    elif isinstance(value, _COLLECTIONS):
        for item in value:
            _scan(item, scan, found, scope)


# ---------------------------------------------------------------------------- resolving


def upstream_error(state: State) -> UpstreamTaskError:
    run_id = state.state_details.task_run_id
    return UpstreamTaskError(
        f"Upstream task run '{run_id}' did not reach a 'COMPLETED' state."
        if run_id
        else f"An upstream state did not reach a 'COMPLETED' state (it is {state.name})."
    )


def state_value(state: State, allow_failed: bool) -> Any:
    """The result behind an upstream state, or its exception when failures are allowed."""
    if state.type == StateType.COMPLETED:
        return state.result()
    if allow_failed and state.is_final():
        return state.result(raise_on_failure=False)
    raise upstream_error(state)


def resolve(value: Any, final_state: Callable[[PrefectFuture[Any]], State]) -> Any:
    """``value`` with futures and states replaced by their results (see module doc)."""
    return _resolve(value, final_state, False)


def _resolve(value: Any, final_state: Callable[[PrefectFuture[Any]], State], allow: bool) -> Any:
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if isinstance(value, PrefectFuture):
        return state_value(final_state(value), allow)
    if isinstance(value, State):
        return state_value(value, allow)
    if isinstance(value, BaseAnnotation):
        return _resolve_annotation(value, final_state, allow)
    if kind is list:
        return [_resolve(v, final_state, allow) for v in value]
    if kind is dict:
        return {
            _resolve(k, final_state, allow): _resolve(v, final_state, allow)
            for k, v in value.items()
        }
    if isinstance(value, tuple):
        items = [_resolve(v, final_state, allow) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, set | frozenset):
        return type(value)(_resolve(v, final_state, allow) for v in value)
    if isinstance(value, list):  # subclasses (e.g. PrefectFutureList): a plain list
        return [_resolve(v, final_state, allow) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, final_state, allow) for k, v in value.items()}
    return value


def _resolve_annotation(
    value: BaseAnnotation[Any], final_state: Callable[[PrefectFuture[Any]], State], allow: bool
) -> Any:
    if isinstance(value, quote):
        return value.value
    if isinstance(value, allow_failure):
        return _resolve(value.value, final_state, True)
    if isinstance(value, opaque):
        inner = value.value
        if isinstance(inner, PrefectFuture):
            return state_value(final_state(inner), allow)
        if isinstance(inner, State):
            return state_value(inner, allow)
        return inner
    return _resolve(value.value, final_state, allow)  # unmapped and others: unwrapped


def wait_future(future: PrefectFuture[Any]) -> State:
    """Block until an upstream future is final and return its state."""
    future.wait()
    return future.state


def visit_futures(expr: Any, fn: Callable[[PrefectFuture[Any]], Any]) -> Any:
    """``expr`` with every future in built-in collections replaced by ``fn(future)``;
    ``expr`` itself (same object, same type) when it holds no future."""
    if not _has_future(expr):
        return expr
    if isinstance(expr, PrefectFuture):
        return fn(expr)
    if isinstance(expr, list):  # PrefectFutureList too, as a plain list
        return [visit_futures(v, fn) for v in expr]
    if isinstance(expr, dict):
        return {k: visit_futures(v, fn) for k, v in expr.items()}
    if isinstance(expr, tuple):
        items = [visit_futures(v, fn) for v in expr]
        return type(expr)(*items) if hasattr(expr, "_fields") else type(expr)(items)
    return type(expr)(visit_futures(v, fn) for v in expr)  # set, frozenset


def _has_future(expr: Any) -> bool:
    if isinstance(expr, PrefectFuture):
        return True
    if type(expr) in _ATOMIC:
        return False
    if isinstance(expr, dict):
        return any(_has_future(v) for v in expr.values())
    if isinstance(expr, _COLLECTIONS):
        return any(_has_future(v) for v in expr)
    return False
