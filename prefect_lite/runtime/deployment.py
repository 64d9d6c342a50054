"""The deployment of the current flow run: ``from prefect_lite.runtime import deployment``.

Attributes: ``id``, ``name``, ``version``, ``parameters`` (the run's parameters),
``flow_run_id``. When the run was not created from a deployment (or there is no run):
``None``, and ``{}`` for ``parameters``. Deployment records are read once per process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prefect_lite.context import FlowRunContext
from prefect_lite.runtime import ENV_DEPLOYMENT_ID, ENV_DEPLOYMENT_NAME
from prefect_lite.runtime._resolve import current_flow_run, read_deployment, resolve
from prefect_lite.runtime._resolve import flow_run_id as _flow_run_id
from prefect_lite.runtime.flow_run import get_deployment_id
from prefect_lite.runtime.flow_run import get_parameters as _run_parameters

# deployment id -> record (deployments do not change under a run); a few, newest kept
_CACHED = 16
_cache: dict[str, Any] = {}


def _deployment(deployment_id: str) -> Any:
    if deployment_id not in _cache:
        while len(_cache) >= _CACHED:
            _cache.pop(next(iter(_cache)))
        _cache[deployment_id] = read_deployment(deployment_id)
    return _cache[deployment_id]


def get_id() -> str | None:
    return get_deployment_id()


def get_flow_run_id() -> str | None:
    return _flow_run_id()


def get_name() -> str | None:
    dep_id = get_id()
    if dep_id is None:
        return None
    if os.environ.get(ENV_DEPLOYMENT_NAME) and os.environ.get(ENV_DEPLOYMENT_ID) == dep_id:
        return os.environ[ENV_DEPLOYMENT_NAME]
    record = _deployment(dep_id)
    return None if record is None else record.name


def get_version() -> str | None:
    dep_id = get_id()
    if dep_id is None:
        return None
    ctx = FlowRunContext.get()
    run = ctx.flow_run if ctx is not None and ctx.flow_run is not None else current_flow_run()
    if run is not None and run.deployment_version:
        return str(run.deployment_version)
    record = _deployment(dep_id)
    return None if record is None else record.version


def get_parameters() -> dict[str, Any]:
    return _run_parameters() if get_id() is not None else {}


FIELDS: dict[str, Callable[[], Any]] = {
    "id": get_id,
    "flow_run_id": get_flow_run_id,
    "name": get_name,
    "version": get_version,
    "parameters": get_parameters,
}

__all__ = sorted(FIELDS)  # the attributes, served by __getattr__ below


def __getattr__(name: str) -> Any:
    return resolve(__name__, FIELDS, name)


def __dir__() -> list[str]:
    return sorted(__all__)
