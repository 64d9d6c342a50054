"""Deployments: register flows to run on a schedule or on demand from a work pool.

``flow.to_deployment(...)`` / ``to_deployment(flow, ...)`` build a ``RunnerDeployment``;
``deploy(*deployments, work_pool_name=...)`` registers them; ``flow.deploy(...)`` does both;
``deploy_all()`` registers a ``prefect_lite.yaml``; ``initialize_project()`` writes one.
"""

from __future__ import annotations

import importlib
from typing import Any

from prefect_lite.deployments.base import (
    RunnerDeployment,
    deploy,
    deploy_flow,
    flow_from_source,
    load_flow,
    to_deployment,
)
from prefect_lite.deployments.yaml_file import deploy_all, initialize_project

__all__ = [
    "RunnerDeployment",
    "deploy",
    "deploy_all",
    "flow_from_source",
    "initialize_project",
    "load_flow",
    "deploy_flow",
    "to_deployment",
]  # and, from their own modules: run_deployment, serve, aserve

# Modules other parts provide, loaded on first use: triggering runs of a deployment
# (``flow_runs``) and serving flows from a local runner (``runner``).
_LAZY = {
    "run_deployment": "prefect_lite.deployments.flow_runs",
    "serve": "prefect_lite.deployments.runner",
    "aserve": "prefect_lite.deployments.runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prefect_lite.deployments' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
