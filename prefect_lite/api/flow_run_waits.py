"""Long-poll for a flow run's next state change: ``wait_for_flow_run_change``.

Whoever follows a run (``run_deployment``, ``deployment run --watch``) passes the version
it has seen; the call returns the run as soon as its state changes (one blocking read in
Redis, woken by ``propose_state``), or as it is once ``timeout`` passes. A client waits
longer by calling again, so no request outlives the HTTP client's timeout.

Over HTTP the server awaits ``wait_for_flow_run_change_async`` instead: the same answer,
waited for on the event loop (``storage.async_waits``), holding no thread.
"""

from __future__ import annotations

import uuid

import anyio.to_thread

from prefect_lite.api.flow_runs import read_flow_run
from prefect_lite.api.registry import operation, served_async
from prefect_lite.exceptions import ObjectNotFound, ValidationError
from prefect_lite.schemas import FlowRun
from prefect_lite.storage import async_waits, run_changes

MAX_WAIT_SECONDS = run_changes.MAX_WAIT_SECONDS


@operation("POST", "/flow_runs/{flow_run_id}/wait", tag="flow_runs", role="read")
def wait_for_flow_run_change(
    flow_run_id: uuid.UUID, version: int | None = None, timeout: float = MAX_WAIT_SECONDS
) -> FlowRun:
    """The run once its state version differs from ``version`` (None: from its version
    now), or after ``timeout`` seconds (at most 10) unchanged."""
    _check(version, timeout)
    if run_changes.wait_for_change(flow_run_id, version, timeout) is None:
        raise ObjectNotFound(f"no flow run with id {flow_run_id}")
    return read_flow_run(flow_run_id)


@served_async(wait_for_flow_run_change)
async def wait_for_flow_run_change_async(
    flow_run_id: uuid.UUID, version: int | None = None, timeout: float = MAX_WAIT_SECONDS
) -> FlowRun:
    """``wait_for_flow_run_change`` on the event loop (the HTTP server's)."""
    _check(version, timeout)
    rid = str(flow_run_id)
    current = await async_waits.read_version(rid)
    if current is None:
        raise ObjectNotFound(f"no flow run with id {flow_run_id}")
    known = current if version is None else version
    if timeout > 0 and current == known:

        async def changed() -> bool:
            return await async_waits.read_version(rid) != known

        await async_waits.wait_until(async_waits.run_channel(rid), changed, timeout)
    return await anyio.to_thread.run_sync(read_flow_run, flow_run_id)


def _check(version: int | None, timeout: float) -> None:
    if not 0 <= timeout <= MAX_WAIT_SECONDS:
        raise ValidationError(
            f"timeout must be between 0 and {MAX_WAIT_SECONDS:g} seconds, not {timeout}"
        )
    if version is not None and version < 0:
        raise ValidationError(f"version must be 0 or more, not {version}")
