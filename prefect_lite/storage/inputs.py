"""Flow run inputs (pause/resume answers, send_input messages) and resume tokens.

Per flow run, ``keys.flow_run_input`` is a hash: input key -> ``"{entry id} {JSON record}"``
and ``keys.flow_run_input_log`` a stream with one entry per live input, in creation order.
The stream gives the order and lets any number of receivers block on new inputs (XREAD
BLOCK from the last entry each has read) without taking them from one another. Creating,
replacing and deleting an input change both in one Lua step, so the stream holds exactly
the live keys. ``keys.flow_run_resume`` is a list the resume handler pushes a token on;
the paused process blocks on it (BLPOP) instead of polling the run's state.

A wait is bounded by ``MAX_BLOCK_SECONDS`` (callers wait longer by calling again) and is
made of server-side blocks of at most ``connection.MAX_BLOCK_SECONDS``, under the
client's socket timeout, so a frozen Redis fails it within that timeout.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from redis.commands.core import Script

from prefect_lite.schemas import RunInput
from prefect_lite.storage import connection, keys
from prefect_lite.storage.connection import get_redis, translate_errors

MAX_BLOCK_SECONDS = 10.0
RESUME_TOKENS_TTL_SECONDS = 24 * 3600

# KEYS: input hash, input log (also the channel the key is published on, for async
# waiters).  ARGV: key, record JSON, overwrite ('1' or '').
# Answers 1 if stored, 0 if the key exists and overwrite is not set.
_PUT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  if ARGV[3] ~= '1' then return 0 end
  redis.call('XDEL', KEYS[2], string.match(old, '^(%S+)'))
end
local id = redis.call('XADD', KEYS[2], '*', 'k', ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], id .. ' ' .. ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
"""

# KEYS: input hash, input log.  ARGV: key.  Answers 1 if it existed.
_DELETE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
redis.call('XDEL', KEYS[2], string.match(old, '^(%S+)'))
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

_scripts: dict[str, Script] = {}


def _run(source: str, script_keys: list[str], args: list[str]) -> int:
    """Run a script by SHA on the current client (loaded on first use or after a flush)."""
    client = get_redis()
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = client.register_script(source)
    with translate_errors():
        return int(script(keys=script_keys, args=args, client=client))


def _keys(run_id: uuid.UUID | str) -> list[str]:
    rid = str(run_id)
    return [keys.flow_run_input(rid), keys.flow_run_input_log(rid)]


def _record(raw: str | None) -> RunInput | None:
    if raw is None:
        return None
    _, _, record = raw.partition(" ")
    return RunInput.model_validate_json(record)


def put(record: RunInput, overwrite: bool = False) -> bool:
    """Store ``record`` under its key; False if the key exists and ``overwrite`` is off."""
    args = [record.key, record.model_dump_json(), "1" if overwrite else ""]
    return bool(_run(_PUT, _keys(record.flow_run_id), args))


def get(run_id: uuid.UUID | str, key: str) -> RunInput | None:
    r: Any = get_redis()
    with translate_errors():
        raw = r.hget(keys.flow_run_input(str(run_id)), key)
    return _record(raw)


def delete(run_id: uuid.UUID | str, key: str) -> bool:
    return bool(_run(_DELETE, _keys(run_id), [key]))


def _matching(
    run_id: str, key_prefix: str, limit: int, exclude: set[str]
) -> tuple[list[RunInput], str]:
    """Up to ``limit`` live inputs whose key starts with ``key_prefix``, oldest first, and
    the id of the last log entry read (where a blocking read resumes)."""
    r: Any = get_redis()
    with translate_errors():
        entries = r.xrange(keys.flow_run_input_log(run_id))
    last = str(entries[-1][0]) if entries else "0-0"
    wanted = [
        fields["k"]
        for _, fields in entries
        if fields.get("k", "").startswith(key_prefix) and fields.get("k") not in exclude
    ][:limit]
    if not wanted:
        return [], last
    with translate_errors():
        rows = r.hmget(keys.flow_run_input(run_id), wanted)
    return [rec for rec in (_record(row) for row in rows) if rec is not None], last


def select(
    run_id: uuid.UUID | str,
    key_prefix: str = "",
    limit: int = 1,
    exclude_keys: Iterable[str] = (),
    wait_seconds: float = 0.0,
) -> list[RunInput]:
    """Inputs whose key starts with ``key_prefix`` (not in ``exclude_keys``), oldest first.

    With ``wait_seconds`` > 0 and nothing matching yet, block on the run's input log until
    a matching input is created or the time (at most ``MAX_BLOCK_SECONDS``) is up.
    """
    rid = str(run_id)
    exclude = set(exclude_keys)
    deadline = time.monotonic() + min(max(wait_seconds, 0.0), MAX_BLOCK_SECONDS)
    r = get_redis()
    while True:
        found, last = _matching(rid, key_prefix, limit, exclude)
        remaining = deadline - time.monotonic()
        if found or remaining <= 0:
            return found
        with translate_errors():
            r.xread(
                {keys.flow_run_input_log(rid): last},
                count=1,
                block=_ms(min(remaining, connection.MAX_BLOCK_SECONDS)),
            )


def push_resume_token(run_id: uuid.UUID | str) -> None:
    """Wake the process waiting for this run to be resumed."""
    key = keys.flow_run_resume(str(run_id))
    with translate_errors():
        pipe = get_redis().pipeline(transaction=True)
        pipe.rpush(key, "1")
        pipe.expire(key, RESUME_TOKENS_TTL_SECONDS)
        pipe.execute()


def clear_resume_tokens(run_id: uuid.UUID | str) -> None:
    """Forget tokens of earlier resumes (before the run pauses again)."""
    with translate_errors():
        get_redis().delete(keys.flow_run_resume(str(run_id)))


def wait_resume_token(run_id: uuid.UUID | str, timeout: float) -> bool:
    """Block until a resume token arrives (True) or ``timeout`` seconds pass (False)."""
    seconds = min(max(timeout, 0.0), MAX_BLOCK_SECONDS)
    deadline = time.monotonic() + seconds
    key = keys.flow_run_resume(str(run_id))
    while (left := deadline - time.monotonic()) > 0:  # short blocks: the socket timeout holds
        with translate_errors():
            got = get_redis().blpop(
                [key], timeout=max(min(left, connection.MAX_BLOCK_SECONDS), 0.01)
            )
        if got is not None:
            return True
    return False


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
