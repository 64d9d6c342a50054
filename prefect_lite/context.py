"""Run contexts: what is running now, in this thread or task.

Contexts are ``contextvars``, so threads started by the task runner and asyncio tasks see
the right run. ``FlowRunContext.get()`` / ``TaskRunContext.get()`` are ``None`` outside a
run. ``serialize_context()`` / ``hydrated_context()`` carry them across processes.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from prefect_lite.settings import Settings, get_settings, temporary_settings

# Settings that never travel with a serialized context (API keys): a child process keeps
# its own, read from its environment.
SECRET_SETTINGS = frozenset(
    name for name, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation)
)


class ContextModel:
    """Base of the contexts: ``with ctx:`` makes it current; ``Cls.get()`` reads it."""

    __var__: ClassVar[contextvars.ContextVar[Any]]
    _token: contextvars.Token[Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__var__ = contextvars.ContextVar(cls.__name__, default=None)

    @classmethod
    def get(cls) -> Self | None:
        return cls.__var__.get()

    def __enter__(self) -> Self:
        self._token = self.__var__.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            self.__var__.reset(self._token)
            self._token = None


@dataclass(eq=False)
class FlowRunContext(ContextModel):
    """The flow run being executed: its Flow, FlowRun record, parameters and runner."""

    flow: Any = None
    flow_run: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)
    task_runner: Any = None
    client: Any = None
    result_store: Any = None
    log_prints: bool = False
    detached: bool = False  # hydrated from another process
    extra: dict[str, Any] = field(default_factory=dict)
    background_tasks: set[Any] = field(default_factory=set)


@dataclass(eq=False)
class TaskRunContext(ContextModel):
    """The task run being executed."""

    task: Any = None
    task_run: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)
    client: Any = None
    result_store: Any = None
    log_prints: bool = False
    detached: bool = False


@dataclass(eq=False)
class TagsContext(ContextModel):
    current_tags: set[str] = field(default_factory=set)

    def add_tags(self, *tags: str) -> None:
        self.current_tags.update(tags)

    def remove_tags(self, *tags: str) -> None:
        self.current_tags.difference_update(tags)


@dataclass(eq=False)
class SettingsContext(ContextModel):
    profile: str = "default"
    settings: Settings = field(default_factory=get_settings)


def get_settings_context() -> SettingsContext:
    """The active settings context (one reflecting the process settings if none is set)."""
    return SettingsContext.get() or SettingsContext(settings=get_settings())


def current_tags() -> set[str]:
    ctx = TagsContext.get()
    return set(ctx.current_tags) if ctx else set()


@contextlib.contextmanager
def tags(*new_tags: str) -> Iterator[set[str]]:
    """Add tags to every flow and task run started inside the block (nesting adds up)."""
    merged = current_tags() | set(new_tags)
    with TagsContext(current_tags=merged):
        yield merged


def serialize_context() -> dict[str, Any]:
    """A JSON-able snapshot of the current contexts, for another thread or process."""
    out: dict[str, Any] = {}
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        out["flow_run_context"] = {
            "flow_run": flow_ctx.flow_run.model_dump(mode="json"),
            "flow_name": getattr(flow_ctx.flow, "name", None),
            "parameters": _jsonable(flow_ctx.parameters),
            "log_prints": flow_ctx.log_prints,
        }
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task_run is not None:
        out["task_run_context"] = {
            "task_run": task_ctx.task_run.model_dump(mode="json"),
            "task_name": getattr(task_ctx.task, "name", None),
            "parameters": _jsonable(task_ctx.parameters),
            "log_prints": task_ctx.log_prints,
        }
    out["tags_context"] = {"current_tags": sorted(current_tags())}
    settings = get_settings_context().settings
    out["settings_context"] = {
        "profile": get_settings_context().profile,
        "settings": {
            k: _setting_text(v)
            for k, v in settings.model_dump().items()
            if k not in SECRET_SETTINGS
        },
    }
    return out


def _setting_text(value: Any) -> str | None:
    """A setting as it travels (None stays None, so an unset URL is not "None")."""
    return None if value is None else str(value)


def _jsonable(value: Any) -> Any:
    import orjson

    try:
        return orjson.loads(orjson.dumps(value, default=str))
    except TypeError:
        return repr(value)


@dataclass
class _DetachedNamed:
    """Stands in for a Flow/Task object in a hydrated context (only its name travels)."""

    name: str | None


@contextlib.contextmanager
def hydrated_context(data: dict[str, Any] | None) -> Iterator[None]:
    """Restore contexts produced by ``serialize_context()`` for the duration of the block."""
    from prefect_lite.schemas import FlowRun, TaskRun

    data = data or {}
    with contextlib.ExitStack() as stack:
        settings_data = (data.get("settings_context") or {}).get("settings") or {}
        overrides = {k: v for k, v in settings_data.items() if k in Settings.model_fields}
        if overrides:
            current = get_settings().model_dump()
            changed = {k: v for k, v in overrides.items() if _setting_text(current.get(k)) != v}
            if changed:
                stack.enter_context(temporary_settings(**changed))
        tag_data = data.get("tags_context") or {}
        if tag_data.get("current_tags"):
            stack.enter_context(TagsContext(current_tags=set(tag_data["current_tags"])))
        flow_data = data.get("flow_run_context")
        if flow_data:
            stack.enter_context(
                FlowRunContext(
                    flow=_DetachedNamed(flow_data.get("flow_name")),
                    flow_run=FlowRun.model_validate(flow_data["flow_run"]),
                    parameters=flow_data.get("parameters") or {},
                    log_prints=bool(flow_data.get("log_prints")),
                    detached=True,
                )
            )
        task_data = data.get("task_run_context")
        if task_data:
            stack.enter_context(
                TaskRunContext(
                    task=_DetachedNamed(task_data.get("task_name")),
                    task_run=TaskRun.model_validate(task_data["task_run"]),
                    parameters=task_data.get("parameters") or {},
                    log_prints=bool(task_data.get("log_prints")),
                    detached=True,
                )
            )
        yield
