"""The operation registry: every API operation once, for both transports.

A handler is a plain function registered with its HTTP method and path. The local client
calls the function directly; the HTTP server builds a route from the same entry and the
HTTP client builds the request from it. Path parameters are named in ``path``; other
parameters travel as the JSON body (POST/PATCH/PUT) or the query string (GET/DELETE).

Every operation declares the role a key needs for it (``role=``: one role, or a tuple
meaning any of them; see ``roles``), and optionally ``elevated``: arguments that, when
truthy, need a role on top (e.g. ``include_secrets``). An operation that declares no role
needs ``admin``, so a forgotten declaration fails closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from prefect_lite.api.roles import ADMIN, ROLES

F = TypeVar("F", bound=Callable[..., Any])
RoleSpec = str | tuple[str, ...]


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    fn: Callable[..., Any]
    status_code: int = 200
    tag: str = ""
    roles: tuple[str, ...] = (ADMIN,)
    elevated: tuple[tuple[str, tuple[str, ...]], ...] = ()
    role_declared: bool = False


OPERATIONS: dict[str, Operation] = {}
# Operation name -> a coroutine function with the same parameters the HTTP server awaits
# instead of running the sync handler in a thread (waits that must not hold a thread).
ASYNC_HANDLERS: dict[str, Callable[..., Awaitable[Any]]] = {}
A = TypeVar("A", bound=Callable[..., Awaitable[Any]])


def operation(
    method: str,
    path: str,
    *,
    status_code: int = 200,
    tag: str = "",
    role: RoleSpec | None = None,
    elevated: dict[str, RoleSpec] | None = None,
) -> Callable[[F], F]:
    """Register ``fn`` as the API operation named after it, needing ``role``."""

    def register(fn: F) -> F:
        name = fn.__name__
        if name in OPERATIONS:
            raise RuntimeError(f"API operation {name!r} registered twice")
        extra = tuple((arg, _roles(name, spec)) for arg, spec in (elevated or {}).items())
        OPERATIONS[name] = Operation(
            name,
            method.upper(),
            path,
            fn,
            status_code,
            tag,
            roles=_roles(name, role if role is not None else ADMIN),
            elevated=extra,
            role_declared=role is not None,
        )
        return fn

    return register


def served_async(sync_fn: Callable[..., Any]) -> Callable[[A], A]:
    """Register ``fn`` as what the HTTP server awaits for the operation ``sync_fn`` is;
    in-process callers keep calling ``sync_fn``."""

    def register(fn: A) -> A:
        ASYNC_HANDLERS[sync_fn.__name__] = fn
        return fn

    return register


def _roles(name: str, spec: RoleSpec) -> tuple[str, ...]:
    roles = (spec,) if isinstance(spec, str) else tuple(spec)
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise RuntimeError(f"API operation {name!r}: unknown role(s) {unknown or roles}")
    return roles


def all_operations() -> dict[str, Operation]:
    """Every operation, with all handler modules imported."""
    from prefect_lite.api import (  # noqa: F401
        blocks,
        cancellation,
        deployment_runs,
        deployments,
        flow_run_inputs,
        flow_run_waits,
        flow_runs,
        flows,
        logs,
        pauses,
        results,
        task_runs,
        variables,
        work_pools,
    )

    return OPERATIONS
