"""The current task run, as module attributes: ``from prefect_lite.runtime import task_run``.

Attributes: ``id``, ``name``, ``task_name``, ``task_key``, ``run_count``, ``parameters``,
``tags``. Ids are strings. Outside a task run: ``None``, empty containers and ``0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect_lite.context import TaskRunContext
from prefect_lite.runtime._resolve import resolve


def _task_run() -> Any:
    ctx = TaskRunContext.get()
    return None if ctx is None else ctx.task_run


def get_id() -> str | None:
    run = _task_run()
    return None if run is None else str(run.id)


def get_name() -> str | None:
    run = _task_run()
    return None if run is None else run.name


def get_task_name() -> str | None:
    ctx = TaskRunContext.get()
    return None if ctx is None else getattr(ctx.task, "name", None)


def get_task_key() -> str | None:
    run = _task_run()
    return None if run is None else run.task_key


def get_run_count() -> int:
    run = _task_run()
    return 0 if run is None else int(run.run_count)


def get_parameters() -> dict[str, Any]:
    ctx = TaskRunContext.get()
    return {} if ctx is None else ctx.parameters


def get_tags() -> list[str]:
    run = _task_run()
    return [] if run is None else list(run.tags)


FIELDS: dict[str, Callable[[], Any]] = {
    "id": get_id,
    "name": get_name,
    "task_name": get_task_name,
    "task_key": get_task_key,
    "run_count": get_run_count,
    "parameters": get_parameters,
    "tags": get_tags,
}

__all__ = sorted(FIELDS)  # the attributes, served by __getattr__ below


def __getattr__(name: str) -> Any:
    return resolve(__name__, FIELDS, name)


def __dir__() -> list[str]:
    return sorted(__all__)
