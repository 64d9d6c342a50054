"""The current flow run, as module attributes: ``from prefect_lite.runtime import flow_run``.

Attributes: ``id``, ``name``, ``flow_name``, ``flow_version``, ``parameters``, ``tags``,
``scheduled_start_time``, ``run_count``, ``parent_flow_run_id``, ``parent_deployment_id``,
``root_flow_run_id``, ``deployment_id``, ``job_variables``. Ids are strings. Outside a run:
``None``, empty containers, ``0``, and ``scheduled_start_time`` is now. See
``prefect_lite.runtime`` for the environment variables read when there is no context.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prefect_lite import _time
from prefect_lite.context import FlowRunContext
from prefect_lite.runtime import ENV_DEPLOYMENT_ID, ENV_FLOW_NAME, ENV_FLOW_RUN_NAME
from prefect_lite.runtime._resolve import current_flow_run, read_flow_run, read_task_run, resolve
from prefect_lite.runtime._resolve import flow_run_id as _flow_run_id


def _has_context() -> bool:
    ctx = FlowRunContext.get()
    return ctx is not None and ctx.flow_run is not None


def get_id() -> str | None:
    return _flow_run_id()


def get_name() -> str | None:
    if not _has_context() and os.environ.get(ENV_FLOW_RUN_NAME):
        return os.environ[ENV_FLOW_RUN_NAME]
    run = current_flow_run()
    return None if run is None else run.name


def get_flow_name() -> str | None:
    ctx = FlowRunContext.get()
    if ctx is not None and getattr(ctx.flow, "name", None):
        return str(ctx.flow.name)
    if not _has_context() and os.environ.get(ENV_FLOW_NAME):
        return os.environ[ENV_FLOW_NAME]
    run = current_flow_run()
    return None if run is None else run.flow_name


def get_flow_version() -> str | None:
    ctx = FlowRunContext.get()
    return None if ctx is None else getattr(ctx.flow, "version", None)


def get_parameters() -> dict[str, Any]:
    ctx = FlowRunContext.get()
    if ctx is not None and ctx.parameters:
        return ctx.parameters  # the call's values, not their JSON form
    run = current_flow_run()
    return {} if run is None else dict(run.parameters)


def get_tags() -> list[str]:
    run = current_flow_run()
    return [] if run is None else list(run.tags)


def get_scheduled_start_time() -> datetime:
    run = current_flow_run()
    if run is None or run.expected_start_time is None:
        return _time.now()
    return run.expected_start_time


def get_run_count() -> int:
    run = current_flow_run()
    return 0 if run is None else int(run.run_count)


def get_deployment_id() -> str | None:
    run = FlowRunContext.get()
    if run is not None and run.flow_run is not None:
        found = run.flow_run.deployment_id
        return None if found is None else str(found)
    if os.environ.get(ENV_DEPLOYMENT_ID):
        return os.environ[ENV_DEPLOYMENT_ID]
    record = current_flow_run()
    return None if record is None or record.deployment_id is None else str(record.deployment_id)


def _parent_of(run: Any) -> str | None:
    """The flow run that started ``run``: its own link, or the parent task run's flow run."""
    if getattr(run, "parent_flow_run_id", None) is not None:
        return str(run.parent_flow_run_id)
    if run.parent_task_run_id is None:
        return None
    parent_task = read_task_run(run.parent_task_run_id)
    return None if parent_task.flow_run_id is None else str(parent_task.flow_run_id)


def get_parent_flow_run_id() -> str | None:
    run = current_flow_run()
    return None if run is None else _parent_of(run)


def get_parent_deployment_id() -> str | None:
    parent_id = get_parent_flow_run_id()
    if parent_id is None:
        return None
    parent = read_flow_run(parent_id)
    return None if parent.deployment_id is None else str(parent.deployment_id)


def get_root_flow_run_id() -> str | None:
    run = current_flow_run()
    if run is None:
        return None
    seen = {str(run.id)}
    while (parent_id := _parent_of(run)) is not None and parent_id not in seen:
        seen.add(parent_id)
        run = read_flow_run(parent_id)
    return str(run.id)


def get_job_variables() -> dict[str, Any] | None:
    run = current_flow_run()
    return None if run is None else dict(run.job_variables)


FIELDS: dict[str, Callable[[], Any]] = {
    "id": get_id,
    "name": get_name,
    "flow_name": get_flow_name,
    "flow_version": get_flow_version,
    "parameters": get_parameters,
    "tags": get_tags,
    "scheduled_start_time": get_scheduled_start_time,
    "run_count": get_run_count,
    "deployment_id": get_deployment_id,
    "parent_flow_run_id": get_parent_flow_run_id,
    "parent_deployment_id": get_parent_deployment_id,
    "root_flow_run_id": get_root_flow_run_id,
    "job_variables": get_job_variables,
}

__all__ = sorted(FIELDS)  # the attributes, served by __getattr__ below


def __getattr__(name: str) -> Any:
    return resolve(__name__, FIELDS, name)


def __dir__() -> list[str]:
    return sorted(__all__)
