"""Cache records and the engine's results hooks (``engine.caching.ResultHooks``).

A cache record (``schemas.CacheRecord``) says where a task run's result is and until when
it may be reused. Its key is ``{task key}:{cache key}`` - the task key is derived from
the task's module, qualified name and name, so two tasks never share an entry even with
identical bodies and key functions - or ``txn:{transaction key}:...`` for a run replayed
by a keyed transaction. Records live in the store (through the client) unless the cache
policy was ``.configure(key_storage=...)``-d to a directory.

``ResultsHooks.lookup`` turns a live record into a ``Cached`` state. A small result
(``records.INLINE_LIMIT`` bytes serialized) is repeated in the record, so its hit needs
no second read; a larger one is read from its storage, and a record whose blob is gone -
e.g. a local file written on another machine - is a miss. ``persist`` writes the value
and the record, or stages the record in the current transaction to be written when it
commits.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from prefect_lite import _time
from prefect_lite.context import FlowRunContext
from prefect_lite.exceptions import ConfigurationError, MissingResult
from prefect_lite.results.records import (
    PersistedResult,
    read_result,
    resolve_serializer,
    write_result,
)
from prefect_lite.results.storage import LocalFileSystem, RedisStorage, resolve_storage
from prefect_lite.schemas import CacheRecord
from prefect_lite.states import Cached, ResultRef, State
from prefect_lite.transactions import TransactionKey, get_transaction

logger = logging.getLogger("prefect_lite.results")

MAX_RECORD_KEY_LENGTH = 900
MARKER_PREFIX = "txn:"


class KeyStorage(Protocol):
    def read(self, key: str) -> CacheRecord | None: ...

    def write(self, records: list[CacheRecord]) -> None: ...


class StoreKeys:
    """Cache records in the store (Redis), through the client: shared by every process."""

    def read(self, key: str) -> CacheRecord | None:
        record: CacheRecord | None = _client().read_cache_record(key)
        return record

    def write(self, records: list[CacheRecord]) -> None:
        _client().write_cache_records(records)


class FileKeys:
    """Cache records as JSON files in a directory (``policy.configure(key_storage=path)``)."""

    def __init__(self, basepath: str | os.PathLike[str]) -> None:
        self.basepath = Path(basepath).expanduser().absolute()

    def _path(self, key: str) -> Path:
        return self.basepath / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def read(self, key: str) -> CacheRecord | None:
        try:
            return CacheRecord.model_validate_json(self._path(key).read_bytes())
        except FileNotFoundError:
            return None

    def write(self, records: list[CacheRecord]) -> None:
        self.basepath.mkdir(parents=True, exist_ok=True)
        for record in records:
            fd, tmp = tempfile.mkstemp(dir=self.basepath, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(record.model_dump_json().encode())
            os.replace(tmp, self._path(record.key))


_DEFAULT_KEYS = StoreKeys()


def default_key_storage() -> StoreKeys:
    return _DEFAULT_KEYS


def resolve_key_storage(value: Any) -> KeyStorage:
    """Where a policy's ``key_storage`` keeps records (None: the store)."""
    if value is None or value == "redis" or isinstance(value, RedisStorage):
        return _DEFAULT_KEYS
    if isinstance(value, LocalFileSystem):
        return FileKeys(value.root())
    if isinstance(value, str | os.PathLike):
        return FileKeys(value)
    raise ConfigurationError(
        f"key_storage={value!r} is not a place for cache records: use a directory path, "
        "LocalFileSystem(path), RedisStorage() or 'redis'"
    )


def key_storage_for(task: Any) -> KeyStorage:
    cache = getattr(task, "_engine_cache", None)
    found: KeyStorage | None = cache.get("key_storage") if cache is not None else None
    if found is None:
        found = resolve_key_storage(getattr(task.cache_policy, "key_storage", None))
        if cache is not None:
            cache["key_storage"] = found
    return found


def record_key(task: Any, cache_key: str) -> str:
    """The record key of ``cache_key`` for ``task``: always namespaced by its task key."""
    if isinstance(cache_key, TransactionKey):
        return str(cache_key)
    key = f"{task.task_key}:{cache_key}"
    if len(key) > MAX_RECORD_KEY_LENGTH or not key.isprintable():
        key = f"{task.task_key}:sha256:{hashlib.sha256(cache_key.encode()).hexdigest()}"
    return key


def marker_record(transaction_key: str) -> CacheRecord:
    return CacheRecord(key=MARKER_PREFIX + transaction_key)


def has_marker(transaction_key: str) -> bool:
    return _DEFAULT_KEYS.read(MARKER_PREFIX + transaction_key) is not None


def is_live(record: CacheRecord) -> bool:
    return record.expiration is None or record.expiration > _time.now()


class ResultsHooks:
    """What the engine calls around a task run (and a flow run's ``persist_result``)."""

    def lookup(self, task: Any, cache_key: str, context: Any) -> State | None:
        if isinstance(cache_key, TransactionKey):
            if not cache_key.transaction.is_committed:
                return None  # replay only what a committed transaction recorded
            storage: KeyStorage = _DEFAULT_KEYS
        else:
            storage = key_storage_for(task)
        key = record_key(task, cache_key)
        txn = get_transaction()
        record = txn.staged_record(key) if txn is not None else None
        if record is None:
            record = storage.read(key)
        if record is None or record.result is None or not is_live(record):
            return None
        inline = None if record.inline is None else record.inline.encode()
        try:
            value = read_result(record.result, inline)
        except MissingResult as exc:
            logger.debug("Cache record %r has no readable result (%s): a miss", key, exc)
            return None
        data = PersistedResult.holding(record.result, value)
        return Cached(data=data, cache_key=cache_key, cache_expiration=record.expiration)

    def persist(
        self, task: Any, value: Any, cache_key: str | None, expiration: Any, context: Any
    ) -> ResultRef | None:
        wanted = task.persist_result or (cache_key is not None and task.persist_result is None)
        ref = self._write(task, value, context) if wanted else None
        txn = get_transaction()
        storage: KeyStorage | None = None
        record, replayed = None, False
        if cache_key is not None and ref is not None:
            replayed = isinstance(cache_key, TransactionKey)
            storage = _DEFAULT_KEYS if replayed else key_storage_for(task)
            record = CacheRecord(
                key=record_key(task, cache_key),
                result=ref.reference(),
                expiration=expiration,
                inline=ref.inline_text(),
            )
        if txn is not None and txn.stage(task, storage, record):
            return ref  # written when the transaction commits
        if record is not None and storage is not None and not replayed:
            storage.write([record])
        return ref

    def persist_flow(self, flow: Any, value: Any) -> ResultRef | None:
        return self._write(flow, value, None)

    def task_failed(self, task: Any) -> None:
        """A task run failed for good: roll back the transaction it is in."""
        txn = get_transaction()
        if txn is not None and txn.is_open:
            logger.info(
                "Task %r failed: rolling back transaction %r", getattr(task, "name", task), txn.key
            )
            txn.rollback()

    def _write(self, owner: Any, value: Any, context: Any) -> PersistedResult | None:
        """Store ``value``; an error is raised if persistence was asked for explicitly
        (``persist_result=True`` or a storage/serializer), else logged (no caching)."""
        try:
            return write_result(
                value,
                resolve_storage(owner.result_storage),
                resolve_serializer(owner.result_serializer),
                key=_storage_key(owner, context),
                keep_in_memory=owner.cache_result_in_memory,
            )
        except Exception as exc:
            if owner.persist_result:
                raise
            logger.warning(
                "Could not persist the result of %r, so it is not cached: %s: %s",
                getattr(owner, "name", owner),
                type(exc).__name__,
                exc,
            )
            return None


def _storage_key(owner: Any, context: Any) -> str | None:
    template = getattr(owner, "result_storage_key", None)
    if template is None:
        return None
    flow_ctx = FlowRunContext.get()
    try:
        return str(
            template.format(
                parameters=getattr(context, "parameters", {}),
                task_run=getattr(context, "task_run", None),
                flow_run=flow_ctx.flow_run if flow_ctx is not None else None,
            )
        )
    except (KeyError, AttributeError, IndexError, ValueError) as exc:
        raise ConfigurationError(
            f"result_storage_key {template!r} of {getattr(owner, 'name', owner)!r} cannot "
            f"be filled in: {type(exc).__name__}: {exc} (it may use {{parameters[name]}}, "
            "{task_run.id}, {flow_run.id}...)"
        ) from exc


def _client() -> Any:
    from prefect_lite.engine.scope import engine_client

    return engine_client()


def transaction_replay_key(task: Any, parameters: dict[str, Any]) -> str | None:
    """The replay key of a task run without a cache key inside a keyed transaction."""
    from prefect_lite.cache_policies import UnhashableError, hash_objects
    from prefect_lite.transactions import keyed_transaction

    txn = keyed_transaction()
    if txn is None:
        return None
    try:
        inputs = hash_objects(parameters)[:16]
    except UnhashableError:
        inputs = "-"
    return txn.next_task_key(task.task_key, inputs)
