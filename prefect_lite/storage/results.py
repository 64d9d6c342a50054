"""Result blobs, cache records and transaction locks in Redis.

- blobs (``P:result:{key}``): what ``RedisStorage`` persists, so workers on other machines
  can read each other's results;
- cache records (``P:cache:{key}``): JSON ``CacheRecord``s, written together in one
  MULTI (a transaction's commit writes all of its records or none). A record with an
  expiration gets a Redis TTL of the remaining time plus ``EXPIRY_GRACE_SECONDS``: the
  reader decides expiry with the (fakeable) clock, the TTL only collects garbage;
- transaction locks (``P:lock:txn:{key}``): ``SET NX PX`` with a holder token; renewing
  and releasing check the token in one script, so a holder whose lock expired and was
  taken over never releases the new holder's lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any

from prefect_lite import _time
from prefect_lite.schemas import CacheRecord
from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis, translate_errors

EXPIRY_GRACE_SECONDS = 3600

# KEYS: lock.  ARGV: holder, ttl_ms.  1 if taken (or already ours: extended), else 0.
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lock.  ARGV: holder.  1 if it was ours and is now released, else 0.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@cache
def _script(source: str) -> Any:
    """A redis-py Script (EVALSHA, loading the source on NOSCRIPT); called with a client."""
    return get_redis().register_script(source)


def _run(source: str, lock_key: str, *args: Any) -> int:
    with translate_errors():
        return int(_script(source)(keys=[lock_key], args=list(args), client=get_redis()))


# -------------------------------------------------------------------------- result blobs
def put_blob(key: str, blob: str) -> None:
    with translate_errors():
        get_redis().set(keys.result_blob(key), blob)


def get_blob(key: str) -> str | None:
    with translate_errors():
        value = get_redis().get(keys.result_blob(key))
    return None if value is None else str(value)


def delete_blob(key: str) -> bool:
    with translate_errors():
        return bool(get_redis().delete(keys.result_blob(key)))


# ------------------------------------------------------------------------- cache records
def get_cache_record(key: str) -> CacheRecord | None:
    with translate_errors():
        raw = get_redis().get(keys.cache_record(key))
    return None if raw is None else CacheRecord.model_validate_json(raw)


def put_cache_records(records: Iterable[CacheRecord]) -> None:
    """Write every record, all in one MULTI/EXEC."""
    now = _time.now()
    with translate_errors():
        pipe = get_redis().pipeline(transaction=True)
        for record in records:
            pipe.set(
                keys.cache_record(record.key),
                record.model_dump_json(),
                px=_ttl_ms(record.expiration, now),
            )
        pipe.execute()


def delete_cache_record(key: str) -> bool:
    with translate_errors():
        return bool(get_redis().delete(keys.cache_record(key)))


def _ttl_ms(expiration: datetime | None, now: datetime) -> int | None:
    if expiration is None:
        return None
    remaining = max(0.0, (expiration - now).total_seconds())
    return int((remaining + EXPIRY_GRACE_SECONDS) * 1000)


# ---------------------------------------------------------------------- transaction locks
def acquire_lock(key: str, holder: str, hold_ms: int) -> bool:
    """Take the lock for ``hold_ms`` (or extend it if ``holder`` has it); False if taken."""
    return _run(_ACQUIRE, keys.transaction_lock(key), holder, hold_ms) == 1


def release_lock(key: str, holder: str) -> bool:
    """Release the lock if ``holder`` still has it; False if it expired or is another's."""
    return _run(_RELEASE, keys.transaction_lock(key), holder) == 1


def lock_holder(key: str) -> str | None:
    with translate_errors():
        value = get_redis().get(keys.transaction_lock(key))
    return None if value is None else str(value)
