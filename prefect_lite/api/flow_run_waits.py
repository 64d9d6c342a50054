"""Long-poll for a flow run's next state change: ``wait_for_flow_run_change``.

Whoever follows a run (``run_deployment``, ``deployment run --watch``) passes the version
it has seen; the call returns the run as soon as its state changes (one blocking read in
Redis, woken by ``propose_state``), or as it is once ``timeout`` passes. A client waits
longer by calling again, so no request outlives the HTTP client's timeout.
"""

from __future__ import annotations

import uuid

from prefect_lite.api.flow_runs import read_flow_run
from prefect_lite.api.registry import operation
from prefect_lite.exceptions import ObjectNotFound, ValidationError
from prefect_lite.schemas import FlowRun
from prefect_lite.storage import run_changes

MAX_WAIT_SECONDS = run_changes.MAX_WAIT_SECONDS


@operation("POST", "/flow_runs/{flow_run_id}/wait", tag="flow_runs", role="read")
def wait_for_flow_run_change(
    flow_run_id: uuid.UUID, version: int | None = None, timeout: float = MAX_WAIT_SECONDS
) -> FlowRun:
    """The run once its state version differs from ``version`` (None: from its version
    now), or after ``timeout`` seconds (at most 10) unchanged."""
    if not 0 <= timeout <= MAX_WAIT_SECONDS:
        raise ValidationError(
            f"timeout must be between 0 and {MAX_WAIT_SECONDS:g} seconds, not {timeout}"
        )
    if version is not None and version < 0:
        raise ValidationError(f"version must be 0 or more, not {version}")
    if run_changes.wait_for_change(flow_run_id, version, timeout) is None:
        raise ObjectNotFound(f"no flow run with id {flow_run_id}")
    return read_flow_run(flow_run_id)
