"""Shared machinery of the runtime modules: attribute lookup with overrides, store reads."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from prefect_lite import _time
from prefect_lite.context import FlowRunContext, TaskRunContext
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.runtime import ENV_FLOW_RUN_ID, ENV_OVERRIDE_PREFIX


def resolve(module: str, fields: dict[str, Callable[[], Any]], name: str) -> Any:
    """``module.name``: the field's value, or its ``PREFECT_LITE__RUNTIME__...`` override
    cast to the same type."""
    short = module.rsplit(".", 1)[-1]
    env_key = f"{ENV_OVERRIDE_PREFIX}{short.upper()}__{name.upper()}"
    getter = fields.get(name)
    if getter is None:
        if env_key in os.environ:
            return os.environ[env_key]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    value = getter()
    if env_key not in os.environ:
        return value
    return _cast(os.environ[env_key], value, env_key)


def _cast(raw: str, like: Any, env_key: str) -> Any:
    if like is None or isinstance(like, str):
        return raw
    if isinstance(like, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    try:
        if isinstance(like, int | float):
            return type(like)(raw)
        if isinstance(like, datetime):
            return _time.ensure_utc(datetime.fromisoformat(raw))
        if isinstance(like, dict | list):
            return orjson.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{env_key}={raw!r} is not a valid {type(like).__name__}") from exc
    raise ValueError(f"{env_key} cannot override a value of type {type(like).__name__}")


def flow_run_id() -> str | None:
    """The current flow run's id: from the flow context, the task run's flow run, or the
    environment set by a worker."""
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        return str(flow_ctx.flow_run.id)
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task_run is not None:
        run_id = task_ctx.task_run.flow_run_id
        return None if run_id is None else str(run_id)
    return os.environ.get(ENV_FLOW_RUN_ID) or None


def current_flow_run() -> Any:
    """The current ``FlowRun`` record: the context's, else read from the store by id."""
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        return flow_ctx.flow_run
    run_id = flow_run_id()
    return None if run_id is None else read_flow_run(run_id)


def read_flow_run(run_id: Any) -> Any:
    from prefect_lite.client import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(str(run_id)))


def read_task_run(run_id: Any) -> Any:
    from prefect_lite.client import get_client

    with get_client(sync_client=True) as client:
        return client.read_task_run(uuid.UUID(str(run_id)))


def read_deployment(deployment_id: Any) -> Any:
    """The deployment record, or None when it was deleted."""
    from prefect_lite.client import get_client

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment(uuid.UUID(str(deployment_id)))
        except ObjectNotFound:
            return None
