"""Persisted results: where a run's return value is stored, so other processes can read it.

Options on ``@flow`` and ``@task``:

- ``persist_result``: True stores the return value; False never does (and turns caching
  off for a task); None (default) stores it only where something needs it (below).
- ``result_storage``: ``LocalFileSystem()`` (the default: files under
  ``PREFECT_LITE_HOME/storage``), ``LocalFileSystem(path)``, ``RedisStorage()`` (for
  workers on other machines; each blob at most ``PREFECT_LITE_MAX_PAYLOAD_BYTES``, else
  ``PayloadTooLarge``), or ``"local"`` / ``"redis"`` / an absolute directory path.
- ``result_serializer``: ``"pickle"`` (default; cloudpickle, signed with the
  result-signing key and never unpickled without a valid signature, see
  ``prefect_lite.signing``) or ``"json"`` (needs no key).
- ``result_storage_key`` (tasks): a template for the blob's key, e.g.
  ``"report-{parameters[day]}"``; default: a fresh random key.

Giving a storage or serializer implies ``persist_result=True``. Persistence is turned on
**automatically** for a task run that has a cache key (``cache_key_fn``, a
``cache_policy``) and for task runs inside a ``Transaction`` with a key: a cache hit in
another process needs the value stored somewhere. A value that cannot be stored then is
logged and simply not cached; with ``persist_result=True`` (or an explicit storage) the
task run fails with the error instead.

A persisted result is referenced from the run's state (``states.ResultRef``, stored with
the state), so ``client.read_flow_run(id).state.result()`` in any process reads it back;
importing this module installs that loader (``prefect_lite.states.result_loader``).
Caching itself is described in ``prefect_lite.cache_policies`` and ``results.cache``.
"""

from __future__ import annotations

from prefect_lite import states
from prefect_lite.engine import caching
from prefect_lite.results.cache import FileKeys, ResultsHooks, StoreKeys
from prefect_lite.results.records import (
    PersistedResult,
    load_result,
    read_result,
    resolve_serializer,
    write_result,
)
from prefect_lite.results.storage import (
    LocalFileSystem,
    RedisStorage,
    ResultStorage,
    resolve_storage,
)

HOOKS = ResultsHooks()


def get_default_result_storage() -> LocalFileSystem:
    """The storage used when none is given: files under ``PREFECT_LITE_HOME/storage``."""
    return LocalFileSystem()


def install() -> None:
    """Make the engine and ``State.result()`` use this module (done on import)."""
    states.result_loader = load_result
    caching.register_default_hooks(HOOKS)


install()

__all__ = [
    "HOOKS",
    "FileKeys",
    "LocalFileSystem",
    "PersistedResult",
    "RedisStorage",
    "ResultStorage",
    "ResultsHooks",
    "StoreKeys",
    "get_default_result_storage",
    "install",
    "load_result",
    "read_result",
    "resolve_serializer",
    "resolve_storage",
    "write_result",
]
