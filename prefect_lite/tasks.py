"""``@task`` and ``Task``: a function whose calls become recorded, retryable task runs.

Calling a task inside a flow runs it now and returns its result (or raises its
exception); ``.submit()`` runs it on the flow's task runner and returns a future;
``.map()`` submits one run per element of its iterable arguments. Outside a flow a
direct call still runs (recorded without a flow run). Options are checked when the task
is declared, so a bad ``retries`` or run-name template fails at import, not mid-flow.

This module imports nothing heavy: the engine is loaded on the first call.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from prefect_lite import retries as retry_policy
from prefect_lite.engine.hooks import check_hooks
from prefect_lite.engine.parameters import Signature, check_run_name
from prefect_lite.exceptions import DefinitionError, MissingContextError, NotCallableError

if TYPE_CHECKING:
    from prefect_lite.context import TaskRunContext
    from prefect_lite.futures import PrefectFuture, PrefectFutureList

P = ParamSpec("P")
R = TypeVar("R")

RESERVED_PARAMETERS = ("return_state", "wait_for")
BANNED_NAME_CHARACTERS = ("/", "%", "&", ">", "<")

_TASK_OPTIONS = (
    "name",
    "description",
    "tags",
    "version",
    "cache_policy",
    "cache_key_fn",
    "cache_expiration",
    "task_run_name",
    "retries",
    "retry_delay_seconds",
    "retry_jitter_factor",
    "retry_condition_fn",
    "persist_result",
    "result_storage",
    "result_serializer",
    "result_storage_key",
    "cache_result_in_memory",
    "timeout_seconds",
    "log_prints",
    "refresh_cache",
    "on_completion",
    "on_failure",
    "on_running",
)


def unwrap_callable(fn: Any, kind: str) -> Callable[..., Any]:
    """The function behind ``fn`` (class/static methods unwrapped); error if not callable."""
    if isinstance(fn, classmethod | staticmethod):
        fn = fn.__func__
    if not callable(fn):
        raise NotCallableError(
            f"@{kind} needs a function, got {type(fn).__name__} {fn!r}"
            + (f"; did you mean @{kind}(name={fn!r})?" if isinstance(fn, str) else "")
        )
    return fn


def check_name(name: Any, owner: str) -> None:
    if name is None:
        return
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"{owner}: name must be a non-empty string, got {name!r}")
    bad = [c for c in BANNED_NAME_CHARACTERS if c in name]
    if bad:
        raise DefinitionError(f"{owner}: name {name!r} contains forbidden character(s) {bad}")


def check_timeout(value: Any, owner: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise DefinitionError(f"{owner}: timeout_seconds must be a number > 0, got {value!r}")
    return float(value)


def check_reserved(sig: Signature, owner: str) -> None:
    for reserved in RESERVED_PARAMETERS:
        if reserved in sig.names:
            raise DefinitionError(
                f"{owner}: parameter name {reserved!r} is reserved by the engine; rename it"
            )


def _optional_callable(value: Any, option: str, owner: str) -> Any:
    if value is not None and not callable(value):
        raise NotCallableError(f"{owner}: {option} must be callable, got {value!r}")
    return value


def _generate_task_key(fn: Callable[..., Any], name: str) -> str:
    qualname = getattr(fn, "__qualname__", type(fn).__qualname__)
    module = getattr(fn, "__module__", None) or ""
    digest = hashlib.sha256(f"{module}:{qualname}:{name}".encode()).hexdigest()[:10]
    return f"{qualname.split('.')[-1]}-{digest}"


class Task(Generic[P, R]):
    """A task: ``fn`` plus its run options (see ``task()`` for each option)."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        cache_policy: Any = None,
        cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None] | None = None,
        cache_expiration: datetime.timedelta | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: Any = None,
        retry_jitter_factor: float | None = None,
        retry_condition_fn: Callable[..., bool] | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        result_storage_key: str | None = None,
        cache_result_in_memory: bool = True,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        refresh_cache: bool | None = None,
        on_completion: list[Callable[..., Any]] | None = None,
        on_failure: list[Callable[..., Any]] | None = None,
        on_running: list[Callable[..., Any]] | None = None,
    ) -> None:
        fn = unwrap_callable(fn, "task")
        check_name(name, "task")
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        owner = f"task {self.name!r}"
        self._sig = Signature(fn)
        check_reserved(self._sig, owner)
        self.description = description or inspect.getdoc(fn)
        if isinstance(tags, str):
            raise DefinitionError(f"{owner}: tags must be a list of strings, not one string")
        self.tags: set[str] = set(tags or ())
        self.version = version
        self.isasync = inspect.iscoroutinefunction(fn)
        self.task_key = _generate_task_key(fn, self.name)
        if cache_policy is not None and not callable(getattr(cache_policy, "compute_key", None)):
            raise DefinitionError(
                f"{owner}: cache_policy must be a cache policy such as INPUTS or DEFAULT "
                f"(prefect_lite.cache_policies), got {cache_policy!r}"
            )
        self.cache_policy = cache_policy
        self.cache_key_fn = _optional_callable(cache_key_fn, "cache_key_fn", owner)
        if cache_expiration is not None and not isinstance(cache_expiration, datetime.timedelta):
            raise DefinitionError(f"{owner}: cache_expiration must be a datetime.timedelta")
        self.cache_expiration = cache_expiration
        check_run_name(task_run_name, self._sig, "task_run_name", owner)
        self.task_run_name = task_run_name
        self.retries = retry_policy.check_retries(retries, owner)
        self.retry_delay_seconds = retry_policy.normalize_retry_delay(
            retry_delay_seconds, self.retries, owner
        )
        self.retry_jitter_factor = retry_policy.check_jitter(retry_jitter_factor, owner)
        self.retry_condition_fn = _optional_callable(
            retry_condition_fn, "retry_condition_fn", owner
        )
        if persist_result is None and (result_storage is not None or result_serializer is not None):
            persist_result = True
        self.persist_result = persist_result
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.result_storage_key = result_storage_key
        self.cache_result_in_memory = cache_result_in_memory
        self.timeout_seconds = check_timeout(timeout_seconds, owner)
        self.log_prints = log_prints
        self.refresh_cache = refresh_cache
        self.on_completion_hooks = check_hooks(on_completion, "on_completion", owner)
        self.on_failure_hooks = check_hooks(on_failure, "on_failure", owner)
        self.on_running_hooks = check_hooks(on_running, "on_running", owner)
        self.on_commit_hooks: list[Callable[..., Any]] = []  # transactions.py runs these
        self.on_rollback_hooks: list[Callable[..., Any]] = []
        self._options = {
            "name": name,
            "description": description,
            "tags": tags,
            "version": version,
            "cache_policy": cache_policy,
            "cache_key_fn": cache_key_fn,
            "cache_expiration": cache_expiration,
            "task_run_name": task_run_name,
            "retries": retries,
            "retry_delay_seconds": retry_delay_seconds,
            "retry_jitter_factor": retry_jitter_factor,
            "retry_condition_fn": retry_condition_fn,
            "persist_result": persist_result,
            "result_storage": result_storage,
            "result_serializer": result_serializer,
            "result_storage_key": result_storage_key,
            "cache_result_in_memory": cache_result_in_memory,
            "timeout_seconds": timeout_seconds,
            "log_prints": log_prints,
            "refresh_cache": refresh_cache,
            "on_completion": on_completion,
            "on_failure": on_failure,
            "on_running": on_running,
        }
        self._engine_cache: dict[str, Any] = {}  # per-task values the engine builds once
        functools.update_wrapper(self, fn)

    def with_options(self, **options: Any) -> Task[P, R]:
        """A copy of this task with some options changed (others kept)."""
        unknown = set(options) - set(_TASK_OPTIONS)
        if unknown:
            raise TypeError(
                f"with_options() got unknown option(s) {sorted(unknown)}; "
                f"known: {', '.join(_TASK_OPTIONS)}"
            )
        if "name" not in options and self._options["name"] is None:
            options["name"] = self.name
        copy: Task[P, R] = Task(self.fn, **{**self._options, **options})
        copy.on_commit_hooks = list(self.on_commit_hooks)
        copy.on_rollback_hooks = list(self.on_rollback_hooks)
        return copy

    def on_commit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: ``fn(transaction)`` runs when the transaction a run joined commits."""
        self.on_commit_hooks.append(_optional_callable(fn, "on_commit", f"task {self.name!r}"))
        return fn

    def on_rollback(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: ``fn(transaction)`` runs when the transaction a run joined rolls back."""
        self.on_rollback_hooks.append(_optional_callable(fn, "on_rollback", f"task {self.name!r}"))
        return fn

    # -- running
    def __call__(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Run now; the result (or the final State with ``return_state=True``)."""
        parameters = self._sig.bind(args, kwargs)
        return _task_engine().run_task(
            self, parameters, wait_for=wait_for, return_type="state" if return_state else "result"
        )

    def submit(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> PrefectFuture[R]:
        """Run on the flow's task runner; a future of the run (``.result()``, ``.state``)."""
        parameters = self._sig.bind(args, kwargs)
        runner = self._task_runner("submit")
        future: PrefectFuture[R] = runner.submit(self, parameters, wait_for=wait_for)
        if return_state:
            future.wait()
            return future.state  # type: ignore[return-value]
        return future

    def map(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> PrefectFutureList[R]:
        """One run per element of the iterable arguments (``unmapped(x)`` for constants)."""
        parameters = self._sig.bind(args, kwargs, apply_defaults=False)
        runner = self._task_runner("map")
        futures: PrefectFutureList[R] = runner.map(self, parameters, wait_for=wait_for)
        if return_state:
            futures.wait()
            return [f.state for f in futures]  # type: ignore[return-value]
        return futures

    def _task_runner(self, verb: str) -> Any:
        from prefect_lite.context import FlowRunContext

        ctx = FlowRunContext.get()
        runner = getattr(ctx, "task_runner", None)
        if runner is None:
            raise MissingContextError(
                f"Cannot {verb} task {self.name!r} outside of a flow run: there is no task "
                "runner. Call it directly, or call it from inside a @flow."
            )
        return runner

    @property
    def signature(self) -> Signature:
        return self._sig

    def __repr__(self) -> str:
        return f"Task(name={self.name!r}, fn={getattr(self.fn, '__qualname__', self.fn)!r})"


_engine_module: Any = None


def _task_engine() -> Any:
    global _engine_module
    if _engine_module is None:
        from prefect_lite.engine import task_engine

        _engine_module = task_engine
    return _engine_module


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(
    __fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    cache_policy: Any = None,
    cache_key_fn: Callable[..., str | None] | None = None,
    cache_expiration: datetime.timedelta | None = None,
    task_run_name: str | Callable[..., str] | None = None,
    retries: int | None = None,
    retry_delay_seconds: Any = None,
    retry_jitter_factor: float | None = None,
    retry_condition_fn: Callable[..., bool] | None = None,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_serializer: Any = None,
    result_storage_key: str | None = None,
    cache_result_in_memory: bool = True,
    timeout_seconds: float | None = None,
    log_prints: bool | None = None,
    refresh_cache: bool | None = None,
    on_completion: list[Callable[..., Any]] | None = None,
    on_failure: list[Callable[..., Any]] | None = None,
    on_running: list[Callable[..., Any]] | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Any = None, **options: Any) -> Any:
    """Declare a task: ``@task``, ``@task(retries=3, ...)`` or ``task(fn, name=...)``.

    Options: name, description, tags, version, cache_policy, cache_key_fn,
    cache_expiration, task_run_name (template over the parameters, or a callable),
    retries, retry_delay_seconds (number, list, or callable such as
    ``exponential_backoff(2)``), retry_jitter_factor, retry_condition_fn ``(task, task_run,
    state) -> bool``, persist_result, result_storage, result_serializer,
    result_storage_key, cache_result_in_memory, timeout_seconds, log_prints,
    refresh_cache, on_completion / on_failure / on_running hooks ``(task, task_run, state)``.
    """
    unknown = set(options) - set(_TASK_OPTIONS)
    if unknown:
        raise TypeError(f"task() got unknown option(s) {sorted(unknown)}")
    if __fn is None:
        return lambda fn: Task(fn, **options)
    return Task(__fn, **options)


def task_input_hash(context: Any, arguments: dict[str, Any]) -> str | None:
    """A ``cache_key_fn``: a hash of the task's identity, code and inputs.

    The code part covers the bytecode and its constants, so editing a literal in the task
    changes the key. Inputs are hashed as JSON when they can be, else with cloudpickle; if
    neither works the key is None (no caching), as in Prefect.
    """
    import orjson

    task_obj = getattr(context, "task", None)
    code = _code_digest(task_obj)
    try:
        blob = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        try:
            import cloudpickle

            blob = cloudpickle.dumps(arguments)
        except Exception:
            return None
    digest = hashlib.sha256()
    digest.update(str(getattr(task_obj, "task_key", "")).encode())
    digest.update(code)
    digest.update(blob)
    return digest.hexdigest()


def _code_digest(task_obj: Any) -> bytes:
    cache = getattr(task_obj, "_engine_cache", None)
    found: bytes | None = cache.get("code_digest") if cache is not None else None
    if found is None:
        code = getattr(getattr(task_obj, "fn", None), "__code__", None)
        if code is None:
            found = b""
        else:
            from prefect_lite.cache_policies import code_fingerprint

            found = code_fingerprint(code).encode()
        if cache is not None:
            cache["code_digest"] = found
    return found


# Prefect exposes these from prefect.tasks; they live in the pure retry policy module.
exponential_backoff = retry_policy.exponential_backoff
