"""prefect_lite: Prefect's programming model on Redis, with pull-based worker pools.

Names are imported lazily so ``import prefect_lite`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "flow": "prefect_lite.flows",
    "Flow": "prefect_lite.flows",
    "serve": "prefect_lite.flows",
    "aserve": "prefect_lite.flows",
    "task": "prefect_lite.tasks",
    "Task": "prefect_lite.tasks",
    "get_run_logger": "prefect_lite.logging",
    "get_client": "prefect_lite.client",
    "State": "prefect_lite.states",
    "tags": "prefect_lite.context",
    "unmapped": "prefect_lite.utilities.annotations",
    "allow_failure": "prefect_lite.utilities.annotations",
    "quote": "prefect_lite.utilities.annotations",
    "Quote": "prefect_lite.utilities.annotations",
    "Transaction": "prefect_lite.transactions",
    "pause_flow_run": "prefect_lite.flow_runs",
    "resume_flow_run": "prefect_lite.flow_runs",
    "suspend_flow_run": "prefect_lite.flow_runs",
    "deploy": "prefect_lite.deployments",
    "run_deployment": "prefect_lite.deployments",
    "Variable": "prefect_lite.variables",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prefect_lite' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
