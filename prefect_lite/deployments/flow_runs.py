"""``run_deployment``: trigger a deployment's flow run from anywhere, and wait for it.

Works the same against local Redis and a remote server (``PREFECT_LITE_API_URL``): the
run is created with ``create_flow_run_from_deployment`` (parameters merged over the
deployment's, checked against its schema), then, unless ``timeout=0``, followed with
``wait_for_flow_run_change`` long polls that return as soon as the run's state changes:
no fixed-interval polling. Called inside a flow or task run (and ``as_subflow``), the run
is linked to the caller as a subflow: a task run in the caller's flow run stands for it
(``parent_task_run_id``), mirrors its states while this call follows it, and records the
parameters' upstream task runs as its inputs. In async code, ``await run_deployment(...)``
(or use ``arun_deployment``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from prefect_lite import _time
from prefect_lite.context import FlowRunContext, TaskRunContext, current_tags
from prefect_lite.schemas import Deployment, FlowRun, RunInputRef, TaskRun
from prefect_lite.states import Pending, State, StateType
from prefect_lite.utilities.asyncutils import sync_compatible

logger = logging.getLogger("prefect_lite.deployments")

MAX_WAIT_SECONDS = 10.0  # one long poll; the server allows no more
MIN_POLL_INTERVAL = 0.1


@sync_compatible
def run_deployment(
    name: str | uuid.UUID,
    client: Any = None,
    parameters: dict[str, Any] | None = None,
    scheduled_time: datetime | None = None,
    flow_run_name: str | None = None,
    timeout: float | None = None,
    poll_interval: float | None = 5,
    tags: Iterable[str] | None = None,
    idempotency_key: str | None = None,
    work_queue_name: str | None = None,
    as_subflow: bool | None = True,
    job_variables: dict[str, Any] | None = None,
) -> FlowRun:
    """Create a flow run of a deployment and return it once it ends, or after ``timeout``.

    ``name`` is ``"flow-name/deployment-name"`` or the deployment's id. ``timeout=0``
    returns the run at once; ``None`` waits for a final state however long it takes.
    The wait wakes when the run's state changes; ``poll_interval`` only bounds how long
    one wait lasts before the run is read again. The same ``idempotency_key`` returns
    the same run. Inside a flow or task run the new run is linked as a subflow unless
    ``as_subflow=False``.
    """
    if timeout is not None and timeout < 0:
        raise ValueError("`timeout` cannot be negative")
    with _client(client) as sync:
        parent_task_run_id = None
        mirror: Callable[[FlowRun], None] | None = None
        parameters = dict(parameters or {})
        options: dict[str, Any] = {
            "scheduled_time": scheduled_time,
            "tags": sorted(tags) if tags is not None else None,
            "idempotency_key": idempotency_key,
            "work_queue_name": work_queue_name,
            "job_variables": job_variables,
        }
        deployment_id = _as_uuid(name)
        if as_subflow and (FlowRunContext.get() or TaskRunContext.get()):
            deployment = _read_deployment(sync, name, deployment_id)
            parameters, link = _link_subflow(sync, deployment, parameters)
            parent_task_run_id = link.id
            mirror = _mirror_into(sync, link)
            deployment_id = deployment.id
        if deployment_id is not None:
            run: FlowRun = sync.create_flow_run_from_deployment(
                deployment_id,
                parameters=parameters,
                name=flow_run_name,
                parent_task_run_id=parent_task_run_id,
                **options,
            )
        else:
            run = sync.create_flow_run_from_deployment_name(
                str(name), parameters=parameters, flow_run_name=flow_run_name, **options
            )
        if timeout == 0:
            return run
        _warn_if_stuck(sync, run)
        return wait_for_final_state(sync, run, timeout, poll_interval, on_change=mirror)


async def arun_deployment(name: str | uuid.UUID, **kwargs: Any) -> FlowRun:
    """``run_deployment`` for async code: the same arguments, awaited."""
    found: FlowRun = await asyncio.to_thread(run_deployment.sync, name, **kwargs)  # type: ignore[attr-defined]
    return found


def wait_for_final_state(
    client: Any,
    run: FlowRun,
    timeout: float | None = None,
    poll_interval: float | None = None,
    on_change: Callable[[FlowRun], None] | None = None,
) -> FlowRun:
    """Follow ``run`` until it is final or ``timeout`` seconds pass; the run as last read.

    Each step is one long poll that returns when the state changes; ``on_change`` sees
    the run after every change.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    step = MAX_WAIT_SECONDS
    if poll_interval is not None:
        step = min(max(poll_interval, MIN_POLL_INTERVAL), MAX_WAIT_SECONDS)
    while run.state is None or not run.state.is_final():
        remaining = step if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            break
        seen = run.version
        run = client.wait_for_flow_run_change(run.id, version=seen, timeout=min(step, remaining))
        if on_change is not None and run.version != seen:
            on_change(run)
    return run


# ----------------------------------------------------------------------------- helpers


def _warn_if_stuck(client: Any, run: FlowRun) -> None:
    """Say at once when nothing can start the run (a paused pool or queue, no worker)."""
    from prefect_lite.deployments.start_checks import start_problem

    due = run.expected_start_time
    if due is not None and due.timestamp() > _time.timestamp() + 5:
        return  # not due yet: a worker may well be there by then
    problem = start_problem(client, run)
    if problem is not None:
        logger.warning("Flow run %r may not start: %s", run.name, problem)


@contextmanager
def _client(given: Any) -> Iterator[Any]:
    """A sync client: the one given (an async ``PrefectClient``'s sync face), else the
    process's shared one for the current settings (its HTTP connections are kept)."""
    if given is not None:
        yield getattr(given, "_sync", given)
        return
    from prefect_lite.engine.scope import engine_client

    yield engine_client()


def _as_uuid(name: str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(name, uuid.UUID):
        return name
    try:
        return uuid.UUID(str(name))
    except ValueError:
        return None


def _read_deployment(
    client: Any, name: str | uuid.UUID, deployment_id: uuid.UUID | None
) -> Deployment:
    if deployment_id is not None:
        by_id: Deployment = client.read_deployment(deployment_id)
        return by_id
    found: Deployment = client.read_deployment_by_name(str(name))
    return found


def _link_subflow(
    client: Any, deployment: Deployment, parameters: dict[str, Any]
) -> tuple[dict[str, Any], TaskRun]:
    """The task run standing for the triggered run in the caller's flow run, and the
    parameters with any futures or states resolved to their results."""
    from prefect_lite.engine.inputs import resolve, scan_inputs, wait_future
    from prefect_lite.engine.scope import current_scope

    flow_ctx, task_ctx = FlowRunContext.get(), TaskRunContext.get()
    scope = current_scope()
    scan = scan_inputs(parameters, None, scope)
    if scan.needs_resolution:
        parameters = resolve(parameters, wait_future)
    inputs = {k: [RunInputRef(id=i) for i in ids] for k, ids in scan.lineage.items()}
    flow_run = flow_ctx.flow_run if flow_ctx is not None else None
    task_run = task_ctx.task_run if task_ctx is not None else None
    if task_run is not None and (flow_run is None or task_run.flow_run_id == flow_run.id):
        inputs["__parents__"] = [RunInputRef(id=task_run.id)]
    flow_run_id = flow_run.id if flow_run is not None else getattr(task_run, "flow_run_id", None)
    task_key = f"{__name__}.run_deployment.{_slug(deployment.full_name)}"
    if scope is not None and scope.flow_run_id == flow_run_id:
        dynamic_key = str(scope.next_dynamic_key(task_key))
    else:
        dynamic_key = uuid.uuid4().hex[:8]
    now = _time.now()
    record = TaskRun(
        name=f"{deployment.full_name}-{dynamic_key}",
        flow_run_id=flow_run_id,
        task_key=task_key,
        dynamic_key=dynamic_key,
        task_version=deployment.version,
        tags=sorted(current_tags()),
        task_inputs=inputs,
        expected_start_time=now,
        created=now,
        updated=now,
    )
    created: TaskRun = client.create_task_run(record, Pending())
    return parameters, created


def _mirror_into(client: Any, link: TaskRun) -> Callable[[FlowRun], None]:
    """Give the linked task run each new state of the triggered run (without its data);
    a run still waiting for a worker leaves it Pending."""
    last: list[tuple[StateType, str | None]] = [(StateType.PENDING, "Pending")]

    def mirror(run: FlowRun) -> None:
        state = run.state
        if state is None or state.type is StateType.SCHEDULED:
            return
        if (state.type, state.name) == last[0]:
            return
        last[0] = (state.type, state.name)
        copy = State(type=state.type, name=state.name, message=state.message)
        client.set_task_run_state(link.id, copy, force=True)

    return mirror


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
