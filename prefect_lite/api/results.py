"""Result, cache record and transaction lock handlers.

What the SDK's results, caching and transactions reach through the client, so a worker
that talks HTTP caches and locks exactly like one next to Redis:

- result blobs for ``RedisStorage`` (at most ``max_payload_bytes`` each: a larger one is
  ``PayloadTooLarge`` with the size and the limit, checked here so every transport
  enforces it);
- cache records: read one, write several at once (a transaction's commit), delete one;
- transaction locks: acquire (or extend) for a holder token, release.
"""

from __future__ import annotations

import math

from prefect_lite.api.registry import operation
from prefect_lite.exceptions import ObjectNotFound, PayloadTooLarge, ValidationError
from prefect_lite.schemas import CacheRecord
from prefect_lite.settings import get_settings
from prefect_lite.storage import results as store

MAX_KEY_LENGTH = 1024
MAX_HOLDER_LENGTH = 128
MAX_RECORDS_PER_WRITE = 10_000
MAX_HOLD_SECONDS = 7 * 24 * 3600
MAX_INLINE_LENGTH = 16 * 1024


def check_key(key: object, what: str = "key", limit: int = MAX_KEY_LENGTH) -> str:
    """Printable, non-empty, at most ``limit`` characters."""
    if not isinstance(key, str) or not key or not key.isprintable():
        raise ValidationError(f"invalid {what} {key!r}: use a non-empty printable string")
    if len(key) > limit:
        raise ValidationError(f"{what} is {len(key)} characters long; the limit is {limit}")
    return key


def check_blob_size(key: str, blob: str) -> None:
    limit = get_settings().max_payload_bytes
    size = len(blob) if blob.isascii() else len(blob.encode())
    if size > limit:
        raise PayloadTooLarge(
            f"result {key!r} is {size} bytes serialized; the limit is {limit} bytes "
            "(PREFECT_LITE_MAX_PAYLOAD_BYTES). Persist large results to a LocalFileSystem "
            "storage (the default) instead of RedisStorage, or raise the limit."
        )


# ------------------------------------------------------------------------------ blobs
@operation("POST", "/results/", status_code=204, tag="results", role="worker")
def write_result(key: str, blob: str) -> None:
    """Store a serialized result under ``key`` (overwriting)."""
    check_key(key)
    check_blob_size(key, blob)
    store.put_blob(key, blob)


@operation("GET", "/results/", tag="results", role="read")
def read_result(key: str) -> str:
    """The serialized result stored under ``key``."""
    check_key(key)
    blob = store.get_blob(key)
    if blob is None:
        raise ObjectNotFound(f"no result stored under {key!r}")
    return blob


@operation("DELETE", "/results/", status_code=204, tag="results", role="admin")
def delete_result(key: str) -> None:
    check_key(key)
    if not store.delete_blob(key):
        raise ObjectNotFound(f"no result stored under {key!r}")


# ---------------------------------------------------------------------- cache records
@operation("GET", "/cache_records/", tag="results", role="read")
def read_cache_record(key: str) -> CacheRecord | None:
    """The cache record under ``key``, or null (expiry is the reader's call)."""
    check_key(key)
    return store.get_cache_record(key)


@operation("POST", "/cache_records/", status_code=204, tag="results", role="worker")
def write_cache_records(records: list[CacheRecord]) -> None:
    """Write every record or none (one MULTI)."""
    if len(records) > MAX_RECORDS_PER_WRITE:
        raise ValidationError(
            f"{len(records)} records in one write; the limit is {MAX_RECORDS_PER_WRITE}"
        )
    for record in records:
        check_key(record.key)
        if record.result is not None:
            check_key(record.result.key, "result key")
        if record.inline is not None and len(record.inline) > MAX_INLINE_LENGTH:
            raise ValidationError(
                f"cache record {record.key!r}: inline result of {len(record.inline)} "
                f"characters; the limit is {MAX_INLINE_LENGTH}"
            )
    store.put_cache_records(records)


@operation("DELETE", "/cache_records/", status_code=204, tag="results", role="admin")
def delete_cache_record(key: str) -> None:
    check_key(key)
    if not store.delete_cache_record(key):
        raise ObjectNotFound(f"no cache record under {key!r}")


# ------------------------------------------------------------------ transaction locks
@operation("POST", "/transaction_locks/acquire", tag="results", role="worker")
def acquire_transaction_lock(key: str, holder: str, hold_seconds: float) -> bool:
    """Take the lock of transaction ``key`` for ``hold_seconds`` (extend it if ``holder``
    has it already); false if another holder has it."""
    check_key(key)
    check_key(holder, "holder", MAX_HOLDER_LENGTH)
    if not math.isfinite(hold_seconds) or not 0 < hold_seconds <= MAX_HOLD_SECONDS:
        raise ValidationError(
            f"hold_seconds must be a number > 0 and <= {MAX_HOLD_SECONDS}, not {hold_seconds!r}"
        )
    return store.acquire_lock(key, holder, max(1, int(hold_seconds * 1000)))


@operation("POST", "/transaction_locks/release", tag="results", role="worker")
def release_transaction_lock(key: str, holder: str) -> bool:
    """Release the lock if ``holder`` still has it; false if it expired or is another's."""
    check_key(key)
    check_key(holder, "holder", MAX_HOLDER_LENGTH)
    return store.release_lock(key, holder)
