"""Cache policies: how a task run's cache key is computed (Prefect 3's model).

``INPUTS`` (the task's arguments), ``TASK_SOURCE`` (the function's source code),
``FLOW_PARAMETERS`` (the flow run's parameters), ``RUN_ID`` (the flow run, so a key never
outlives its run), ``NONE``/``NO_CACHE`` (no key: never cached) and ``DEFAULT`` (= INPUTS +
TASK_SOURCE + RUN_ID, as in Prefect). Combine with ``+``; leave an argument out of
``INPUTS`` with ``INPUTS - "name"``; ``policy.configure(key_storage=...)`` keeps the cache
records somewhere else than the store (a directory, ``LocalFileSystem`` or
``RedisStorage``).

``@task(cache_policy=INPUTS + TASK_SOURCE)`` caches: a run whose key has a live record
ends ``Cached`` without running the body. Keys are always namespaced by the task's key
(see ``prefect_lite.results``), so two tasks never share an entry. A policy that cannot
compute a key (e.g. an argument that cannot be hashed) raises, and the task run fails
with that error rather than caching under a broader key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class UnhashableError(ValueError):
    """A value that neither JSON nor cloudpickle can turn into bytes."""


def _json_default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    raise TypeError(type(obj).__name__)


def hash_objects(*objects: Any) -> str:
    """A stable hex digest of ``objects``: JSON if possible, else cloudpickle."""
    try:
        blob = orjson.dumps(objects, default=_json_default, option=_JSON_OPTIONS)
    except TypeError:
        import cloudpickle

        try:
            blob = cloudpickle.dumps(objects)
        except Exception as exc:
            raise UnhashableError(f"{type(exc).__name__}: {exc}") from exc
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class CachePolicy:
    """Base of cache policies: ``compute_key(task_ctx, inputs, flow_parameters)``."""

    key_storage: Any = None

    @classmethod
    def from_cache_key_fn(cls, cache_key_fn: Callable[..., str | None]) -> CacheKeyFnPolicy:
        return CacheKeyFnPolicy(cache_key_fn=cache_key_fn)

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        raise NotImplementedError

    def configure(self, key_storage: Any = None) -> CachePolicy:
        """A copy whose cache records live in ``key_storage`` (a directory path,
        ``LocalFileSystem``, ``RedisStorage`` or ``"redis"``)."""
        from prefect_lite.results.cache import resolve_key_storage

        resolve_key_storage(key_storage)  # a bad location fails here, not mid-run
        return dataclasses.replace(self, key_storage=key_storage)

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(other, _None):
            return self
        storages = [p.key_storage for p in (self, other) if p.key_storage is not None]
        if len(storages) == 2 and storages[0] != storages[1]:
            raise ValueError("cannot add cache policies with different key storages")
        return CompoundCachePolicy(
            policies=(*_parts(self), *_parts(other)),
            key_storage=storages[0] if storages else None,
        )

    def __sub__(self, name: str) -> CachePolicy:
        raise ValueError(
            f"{self!r} does not hash the task's inputs, so there is no {name!r} to leave "
            "out; subtract from INPUTS (or a policy that includes it)"
        )


def _parts(policy: CachePolicy) -> tuple[CachePolicy, ...]:
    if isinstance(policy, CompoundCachePolicy):
        return policy.policies
    return (dataclasses.replace(policy, key_storage=None),)


@dataclass(frozen=True)
class CacheKeyFnPolicy(CachePolicy):
    """A ``cache_key_fn(task_run_context, inputs) -> str | None`` as a policy."""

    cache_key_fn: Callable[..., str | None] | None = None

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kw: Any
    ) -> str | None:
        return None if self.cache_key_fn is None else self.cache_key_fn(task_ctx, inputs)


@dataclass(frozen=True)
class CompoundCachePolicy(CachePolicy):
    """Several policies: the hash of their keys (None if none of them gives one)."""

    policies: tuple[CachePolicy, ...] = ()

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kw: Any
    ) -> str | None:
        keys = [p.compute_key(task_ctx, inputs, flow_parameters, **kw) for p in self.policies]
        present = [k for k in keys if k is not None]
        return hash_objects(*present) if present else None

    def __sub__(self, name: str) -> CachePolicy:
        if not any(isinstance(p, Inputs) for p in self.policies):
            return super().__sub__(name)
        parts = tuple(p - name if isinstance(p, Inputs) else p for p in self.policies)
        return dataclasses.replace(self, policies=parts)


@dataclass(frozen=True)
class _None(CachePolicy):
    """No key: runs are never cached."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kw: Any
    ) -> str | None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return other


@dataclass(frozen=True)
class TaskSource(CachePolicy):
    """The task function's source code (its bytecode where the source is not available)."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kw: Any
    ) -> str | None:
        fn = getattr(getattr(task_ctx, "task", None), "fn", None)
        return None if fn is None else _source_hash(fn)


def _source_hash(fn: Callable[..., Any]) -> str:
    try:
        return _cached_source_hash(fn)
    except TypeError:  # an unhashable callable object
        return _compute_source_hash(fn)


def _compute_source_hash(fn: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        source = code_fingerprint(code) if code is not None else repr(type(fn))
    return hashlib.sha256(source.encode()).hexdigest()


_cached_source_hash = lru_cache(maxsize=4096)(_compute_source_hash)


def code_fingerprint(code: Any) -> str:
    """A digest of a code object's bytecode and constants, nested functions included
    (their ``repr`` holds a memory address, so it would differ between processes)."""
    digest = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        digest.update(_const_text(const).encode())
    return digest.hexdigest()


def _const_text(const: Any) -> str:
    """A constant as text that is the same in every process (set order depends on the
    process's hash seed; a code object's repr on its address)."""
    if hasattr(const, "co_code"):
        return code_fingerprint(const)
    if isinstance(const, frozenset):
        return "frozenset(" + ",".join(sorted(_const_text(c) for c in const)) + ")"
    if isinstance(const, tuple):
        return "(" + ",".join(_const_text(c) for c in const) + ")"
    return repr(const)


@dataclass(frozen=True)
class FlowParameters(CachePolicy):
    """The parameters of the flow run the task runs in."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kw: Any
    ) -> str | None:
        return hash_objects(flow_parameters) if flow_parameters else None


@dataclass(frozen=True)
class RunId(CachePolicy):
    """The flow run's id (the task run's own id outside a flow)."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kw: Any
    ) -> str | None:
        run = getattr(task_ctx, "task_run", None)
        if run is None:
            return None
        return str(run.flow_run_id or run.id)


@dataclass(frozen=True)
class Inputs(CachePolicy):
    """The task's arguments, except those named in ``exclude``."""

    exclude: tuple[str, ...] = ()

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kw: Any
    ) -> str | None:
        kept = {k: v for k, v in inputs.items() if k not in self.exclude}
        try:
            return hash_objects(kept)
        except UnhashableError:
            bad = [k for k, v in kept.items() if not _hashable(v)]
            task_name = getattr(getattr(task_ctx, "task", None), "name", "?")
            raise UnhashableError(
                f"cannot compute the INPUTS cache key of task {task_name!r}: argument(s) "
                f"{bad} can be neither JSON-encoded nor pickled. Leave them out with "
                f"INPUTS - {bad[0]!r} or give the task a cache_key_fn."
                if bad
                else f"cannot compute the INPUTS cache key of task {task_name!r}"
            ) from None

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            raise TypeError("subtract an argument name (a string) from INPUTS")
        return dataclasses.replace(self, exclude=(*self.exclude, name))


def _hashable(value: Any) -> bool:
    try:
        hash_objects(value)
    except UnhashableError:
        return False
    return True


INPUTS = Inputs()
NONE = _None()
NO_CACHE = NONE
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "RunId",
    "TaskSource",
    "hash_objects",
]
