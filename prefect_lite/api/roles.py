"""API key roles: what a key may do, and which role an operation needs.

Four roles, from least to most trusted:

- ``read``: every read (runs, logs, deployments, pools, blocks with secrets masked...).
- ``run``: read, plus trigger deployment runs, cancel and resume runs, send run input.
- ``worker``: read, plus what executing a flow needs: create flow and task runs, propose
  their states, write logs, results, cache records and transaction locks, claim due runs,
  renew leases and report exits, read blocks with their secrets, send run input, and
  trigger deployment runs (a flow may call ``run_deployment``).
- ``admin``: everything (deployments, pools, queues, blocks, variables, forced changes).

``run`` and ``worker`` are siblings: neither includes the other. The server's auth layer
(``prefect_lite.server.auth``) re-exports these names; handlers declare theirs in the
registry (``@operation(..., role=...)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

Role = Literal["read", "run", "worker", "admin"]
READ: Role = "read"
RUN: Role = "run"
WORKER: Role = "worker"
ADMIN: Role = "admin"
ROLES: tuple[Role, ...] = (READ, RUN, WORKER, ADMIN)

_INCLUDES: dict[str, frozenset[str]] = {
    READ: frozenset({READ}),
    RUN: frozenset({READ, RUN}),
    WORKER: frozenset({READ, WORKER}),
    ADMIN: frozenset(ROLES),
}


def allows(role: str, needed: str) -> bool:
    """True if a key with ``role`` may do what needs ``needed`` (admin allows all)."""
    return needed in _INCLUDES.get(role, frozenset())


def allows_any(role: str, needed: Iterable[str]) -> bool:
    """True if ``role`` allows at least one of ``needed``."""
    return any(allows(role, n) for n in needed)


def describe_needed(needed: Iterable[str]) -> str:
    """``'admin'`` or ``'run' or 'worker'``, for error messages."""
    return " or ".join(f"'{n}'" for n in needed)


def missing_role(role: str, needed: tuple[str, ...]) -> str | None:
    """None if ``role`` allows one of ``needed``; else the one-line reason for a 403."""
    if allows_any(role, needed):
        return None
    plural = "s" if len(needed) > 1 else ""
    return f"this needs the {describe_needed(needed)} role{plural}; your key has '{role}'"


def check_arguments(
    role: str, elevated: Mapping[str, tuple[str, ...]], arguments: Mapping[str, Any]
) -> str | None:
    """The 403 reason if a truthy argument in ``elevated`` needs more than ``role``."""
    for name, needed in elevated.items():
        if arguments.get(name) and not allows_any(role, needed):
            return f"{name}: {missing_role(role, needed)}"
    return None
