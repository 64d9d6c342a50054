"""What is running now: ``runtime.flow_run``, ``runtime.task_run``, ``runtime.deployment``.

Their attributes (``flow_run.id``, ``task_run.name``, ``deployment.parameters``...) can be
read anywhere; outside a run they are ``None`` or empty. Values come from the active run
context; without one, from the environment variables below, which workers set for the
runs they start (``run_environment()`` builds them). When only the flow run id is known,
other values are read from the store by id, through the client.

============================  ==========================================================
environment variable          meaning
============================  ==========================================================
PREFECT_LITE__FLOW_RUN_ID     id of the flow run this process executes
PREFECT_LITE__FLOW_RUN_NAME   its name (saves a store lookup)
PREFECT_LITE__FLOW_NAME       its flow's name
PREFECT_LITE__DEPLOYMENT_ID   id of the deployment the run was created from
PREFECT_LITE__DEPLOYMENT_NAME that deployment's name
============================  ==========================================================

For tests, ``PREFECT_LITE__RUNTIME__<MODULE>__<ATTRIBUTE>`` (e.g.
``PREFECT_LITE__RUNTIME__FLOW_RUN__NAME=x``) overrides one attribute; the value is cast to
the attribute's type (JSON for dicts and lists). Unknown attributes raise AttributeError.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

ENV_FLOW_RUN_ID = "PREFECT_LITE__FLOW_RUN_ID"
ENV_FLOW_RUN_NAME = "PREFECT_LITE__FLOW_RUN_NAME"
ENV_FLOW_NAME = "PREFECT_LITE__FLOW_NAME"
ENV_DEPLOYMENT_ID = "PREFECT_LITE__DEPLOYMENT_ID"
ENV_DEPLOYMENT_NAME = "PREFECT_LITE__DEPLOYMENT_NAME"
ENV_OVERRIDE_PREFIX = "PREFECT_LITE__RUNTIME__"

_SUBMODULES = ("flow_run", "task_run", "deployment")

__all__ = [
    "ENV_DEPLOYMENT_ID",
    "ENV_DEPLOYMENT_NAME",
    "ENV_FLOW_NAME",
    "ENV_FLOW_RUN_ID",
    "ENV_FLOW_RUN_NAME",
    "ENV_OVERRIDE_PREFIX",
    "deployment",
    "flow_run",
    "run_environment",
    "task_run",
]


def run_environment(flow_run: Any, deployment: Any = None) -> dict[str, str]:
    """The variables to set for a process that executes ``flow_run`` (a ``FlowRun``
    record), optionally created from ``deployment`` (a ``Deployment`` record)."""
    env = {ENV_FLOW_RUN_ID: str(flow_run.id), ENV_FLOW_RUN_NAME: flow_run.name}
    if flow_run.flow_name:
        env[ENV_FLOW_NAME] = flow_run.flow_name
    deployment_id = getattr(deployment, "id", None) or flow_run.deployment_id
    if deployment_id is not None:
        env[ENV_DEPLOYMENT_ID] = str(deployment_id)
    if deployment is not None:
        env[ENV_DEPLOYMENT_NAME] = deployment.name
    return env


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
