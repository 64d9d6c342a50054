"""``@flow`` and ``Flow``: a function whose calls become recorded flow runs.

Calling a flow creates a flow run (a child run, linked to its parent, when called inside
another flow), runs the function and returns its result or raises its exception
(``return_state=True`` returns the final State). Parameters are validated against the
type hints before the body runs. Options are checked at declaration.

``load_flow_from_entrypoint("path/file.py:func" | "module:func")`` loads a flow for
workers and deployments. This module imports nothing heavy: the engine is loaded on the
first call.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from prefect_lite import retries as retry_policy
from prefect_lite.engine.hooks import FLOW_HOOKS, check_hooks
from prefect_lite.engine.parameters import Signature, check_run_name
from prefect_lite.exceptions import (
    DefinitionError,
    MissingFlowError,
    NotAFlowError,
    ScriptError,
)
from prefect_lite.tasks import check_name, check_reserved, check_timeout, unwrap_callable

if TYPE_CHECKING:
    from prefect_lite.task_runners import TaskRunner

P = ParamSpec("P")
R = TypeVar("R")

_FLOW_OPTIONS = (
    "name",
    "description",
    "version",
    "flow_run_name",
    "task_runner",
    "timeout_seconds",
    "validate_parameters",
    "retries",
    "retry_delay_seconds",
    "persist_result",
    "result_storage",
    "result_serializer",
    "cache_result_in_memory",
    "log_prints",
    *FLOW_HOOKS,
)


class Flow(Generic[P, R]):
    """A flow: ``fn`` plus its run options (see ``flow()`` for each option)."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        flow_run_name: str | Callable[..., str] | None = None,
        task_runner: TaskRunner | type[TaskRunner] | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        cache_result_in_memory: bool = True,
        log_prints: bool | None = None,
        on_completion: list[Callable[..., Any]] | None = None,
        on_failure: list[Callable[..., Any]] | None = None,
        on_cancellation: list[Callable[..., Any]] | None = None,
        on_crashed: list[Callable[..., Any]] | None = None,
        on_running: list[Callable[..., Any]] | None = None,
    ) -> None:
        fn = unwrap_callable(fn, "flow")
        check_name(name, "flow")
        self.fn = fn
        default_name = getattr(fn, "__name__", type(fn).__name__)
        self.name: str = name or default_name.replace("_", "-").replace(
            "<lambda>", "unknown-lambda"
        )
        owner = f"flow {self.name!r}"
        self._sig = Signature(fn)
        check_reserved(self._sig, owner)
        self.description = description or inspect.getdoc(fn)
        self.version = version
        self.isasync = inspect.iscoroutinefunction(fn)
        check_run_name(flow_run_name, self._sig, "flow_run_name", owner)
        self.flow_run_name = flow_run_name
        self.task_runner = _task_runner(task_runner, owner)
        self.timeout_seconds = check_timeout(timeout_seconds, owner)
        self.should_validate_parameters = bool(validate_parameters)
        if self.should_validate_parameters:
            self._sig.check_validatable(owner)
        self.retries = retry_policy.check_retries(retries, owner)
        delay = retry_policy.normalize_retry_delay(retry_delay_seconds, self.retries, owner)
        if isinstance(delay, list):
            raise DefinitionError(f"{owner}: retry_delay_seconds of a flow must be one number")
        self.retry_delay_seconds: float = delay
        if persist_result is None and (result_storage is not None or result_serializer is not None):
            persist_result = True
        self.persist_result = persist_result
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.cache_result_in_memory = cache_result_in_memory
        self.log_prints = log_prints
        self.on_completion_hooks = check_hooks(on_completion, "on_completion", owner)
        self.on_failure_hooks = check_hooks(on_failure, "on_failure", owner)
        self.on_cancellation_hooks = check_hooks(on_cancellation, "on_cancellation", owner)
        self.on_crashed_hooks = check_hooks(on_crashed, "on_crashed", owner)
        self.on_running_hooks = check_hooks(on_running, "on_running", owner)
        qualname = getattr(fn, "__qualname__", default_name)
        digest = hashlib.sha256(f"{fn.__module__}:{qualname}:{self.name}".encode()).hexdigest()
        self.task_key = f"{qualname.split('.')[-1]}-{digest[:10]}"  # of its subflow task runs
        self._options = {
            "name": name,
            "description": description,
            "version": version,
            "flow_run_name": flow_run_name,
            "task_runner": task_runner,
            "timeout_seconds": timeout_seconds,
            "validate_parameters": validate_parameters,
            "retries": retries,
            "retry_delay_seconds": retry_delay_seconds,
            "persist_result": persist_result,
            "result_storage": result_storage,
            "result_serializer": result_serializer,
            "cache_result_in_memory": cache_result_in_memory,
            "log_prints": log_prints,
            "on_completion": on_completion,
            "on_failure": on_failure,
            "on_cancellation": on_cancellation,
            "on_crashed": on_crashed,
            "on_running": on_running,
        }
        self._engine_cache: dict[str, Any] = {}
        self._entrypoint: str | None = None
        functools.update_wrapper(self, fn)

    def with_options(self, **options: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed (others kept)."""
        unknown = set(options) - set(_FLOW_OPTIONS)
        if unknown:
            raise TypeError(
                f"with_options() got unknown option(s) {sorted(unknown)}; "
                f"known: {', '.join(_FLOW_OPTIONS)}"
            )
        if "name" not in options and self._options["name"] is None:
            options["name"] = self.name
        if "task_runner" not in options:
            options["task_runner"] = self.task_runner.duplicate()
        copy: Flow[P, R] = Flow(self.fn, **{**self._options, **options})
        copy._entrypoint = self._entrypoint
        return copy

    @property
    def signature(self) -> Signature:
        return self._sig

    @property
    def parameters(self) -> dict[str, Any]:
        """JSON schema of the flow's parameters (deployments store it)."""
        return self._sig.json_schema()

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Parameters coerced to their annotated types; ``ParameterTypeError`` if they do not
        fit; ``ParameterBindError`` for unknown or missing ones."""
        bound = self._sig.bind((), dict(parameters))
        return self._sig.validate(bound, "Flow run")

    # -- running
    def __call__(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Run the flow: its result (or final State with ``return_state=True``); for an async
        flow, a coroutine to await."""
        parameters = self._sig.bind(args, kwargs)
        return _flow_engine().run_flow(
            self, parameters, wait_for=wait_for, return_type="state" if return_state else "result"
        )

    def serve(self, *args: Any, **kwargs: Any) -> Any:
        return serve(self, *args, **kwargs)

    # -- deployments (``prefect_lite.deployments`` does the work)
    def to_deployment(self, name: str, **kwargs: Any) -> Any:
        return _deployments_function("to_deployment")(self, name, **kwargs)

    def deploy(self, name: str, work_pool_name: str | None = None, **kwargs: Any) -> Any:
        return _deployments_function("deploy_flow")(self, name, work_pool_name, **kwargs)

    @classmethod
    def from_source(cls, source: Any, entrypoint: str, **kwargs: Any) -> Flow[Any, Any]:
        return _deployments_function("flow_from_source")(source, entrypoint, **kwargs)

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r}, fn={getattr(self.fn, '__qualname__', self.fn)!r})"


def _task_runner(value: Any, owner: str) -> TaskRunner:
    from prefect_lite.task_runners import TaskRunner, ThreadPoolTaskRunner

    if value is None:
        return ThreadPoolTaskRunner()
    if isinstance(value, type) and issubclass(value, TaskRunner):
        return value()
    if isinstance(value, TaskRunner):
        return value
    raise DefinitionError(
        f"{owner}: task_runner must be a TaskRunner (e.g. ThreadPoolTaskRunner(max_workers=4)), "
        f"got {type(value).__name__}"
    )


_engine_module: Any = None


def _flow_engine() -> Any:
    global _engine_module
    if _engine_module is None:
        from prefect_lite.engine import flow_engine

        _engine_module = flow_engine
    return _engine_module


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...


@overload
def flow(
    __fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    version: str | None = None,
    flow_run_name: str | Callable[..., str] | None = None,
    task_runner: Any = None,
    timeout_seconds: float | None = None,
    validate_parameters: bool = True,
    retries: int | None = None,
    retry_delay_seconds: float | None = None,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_serializer: Any = None,
    cache_result_in_memory: bool = True,
    log_prints: bool | None = None,
    on_completion: list[Callable[..., Any]] | None = None,
    on_failure: list[Callable[..., Any]] | None = None,
    on_cancellation: list[Callable[..., Any]] | None = None,
    on_crashed: list[Callable[..., Any]] | None = None,
    on_running: list[Callable[..., Any]] | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Any = None, **options: Any) -> Any:
    """Declare a flow: ``@flow``, ``@flow(name=..., retries=...)`` or ``flow(fn, ...)``.

    Options: name (default: the function name, ``_`` -> ``-``), description, version,
    flow_run_name (template over the parameters, or a callable), task_runner (default
    ``ThreadPoolTaskRunner()``), timeout_seconds, validate_parameters (default True),
    retries, retry_delay_seconds, persist_result, result_storage, result_serializer,
    cache_result_in_memory, log_prints, and on_completion / on_failure / on_cancellation /
    on_crashed / on_running hooks ``(flow, flow_run, state)``.
    """
    unknown = set(options) - set(_FLOW_OPTIONS)
    if unknown:
        raise TypeError(f"flow() got unknown option(s) {sorted(unknown)}")
    if __fn is None:
        return lambda fn: Flow(fn, **options)
    return Flow(__fn, **options)


def serve(*flows: Any, **kwargs: Any) -> Any:
    """Serve flows as deployments (provided by ``prefect_lite.deployments``)."""
    return _deployments_function("serve")(*flows, **kwargs)


async def aserve(*flows: Any, **kwargs: Any) -> Any:
    return await _deployments_function("aserve")(*flows, **kwargs)


def _deployments_function(name: str) -> Any:
    try:
        module = importlib.import_module("prefect_lite.deployments")
        return getattr(module, name)
    except (ImportError, AttributeError):
        raise NotImplementedError(
            f"{name}() needs prefect_lite.deployments, which does not provide it yet"
        ) from None


# ---------------------------------------------------------------------------- entrypoints


def load_flow_from_entrypoint(
    entrypoint: str, base_dir: str | os.PathLike[str] | None = None
) -> Flow[Any, Any]:
    """The flow named by ``path/to/file.py:func`` or ``package.module:func``.

    Relative file paths are taken from ``base_dir`` (default: the working directory).
    Raises ``MissingFlowError`` (no such file, module or attribute), ``ScriptError`` (the
    code raised while importing) or ``NotAFlowError`` (the object is not a flow).
    """
    if not isinstance(entrypoint, str) or ":" not in entrypoint:
        raise MissingFlowError(
            f"entrypoint {entrypoint!r} must look like 'path/to/file.py:function' or "
            "'package.module:function'"
        )
    location, _, attribute = entrypoint.rpartition(":")
    if not location or not attribute:
        raise MissingFlowError(f"entrypoint {entrypoint!r} lacks a file/module or a function")
    if location.endswith(".py") or os.sep in location or "/" in location:
        module = _load_file(Path(base_dir or os.getcwd()) / location, entrypoint)
    else:
        module = _load_module(location, entrypoint)
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise MissingFlowError(
                f"{location!r} has no attribute {attribute!r} (entrypoint {entrypoint!r})"
            ) from None
    if not isinstance(obj, Flow):
        from prefect_lite.tasks import Task

        what = "a task" if isinstance(obj, Task) else f"a {type(obj).__name__}"
        raise NotAFlowError(
            f"{attribute!r} in {location!r} is {what}, not a flow: decorate it with @flow"
        )
    obj._entrypoint = entrypoint
    return obj


def _load_file(path: Path, entrypoint: str) -> Any:
    path = path.resolve()
    if not path.is_file():
        raise MissingFlowError(f"no such file {str(path)!r} (entrypoint {entrypoint!r})")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    module_name = f"__prefect_lite_entrypoint_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise MissingFlowError(f"cannot load {str(path)!r} as Python (entrypoint {entrypoint!r})")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    directory = str(path.parent)
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)  # sibling modules of the script import as usual
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ScriptError(f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if added and directory in sys.path:
            sys.path.remove(directory)
    return module


def _load_module(name: str, entrypoint: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise MissingFlowError(
                f"no module named {name!r} (entrypoint {entrypoint!r})"
            ) from None
        raise ScriptError(f"importing {name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ScriptError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc
