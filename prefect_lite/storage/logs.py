"""Run logs: one Redis list per flow run, appended in batches, read in order.

A run keeps at most ``max_logs_per_run`` records (``PREFECT_LITE_MAX_LOGS_PER_RUN``).
Past that, records are dropped and counted, and one marker record at the end of the list
says how many (rewritten as the count grows). The check and the append are one script,
so writers appending at once never take the list past the cap.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable

from redis.commands.core import Script

from prefect_lite import _time
from prefect_lite.schemas import Log
from prefect_lite.settings import get_settings
from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis, translate_errors

DROPPED = "__DROPPED__"  # replaced by the count in the marker record

# KEYS: log list, dropped counter.  ARGV: cap, marker JSON (with DROPPED), records...
# Appends what fits under the cap; counts the rest and writes/rewrites the marker after
# the last kept record. Answers how many records were stored.
_APPEND = """
local cap = tonumber(ARGV[1])
local len = redis.call('LLEN', KEYS[1])
local n = #ARGV - 2
local take = math.max(0, math.min(cap - len, n))
local i = 3
while i < 3 + take do
  local last = math.min(i + 999, 2 + take)  -- 1000 per RPUSH: unpack has a stack limit
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, last))
  i = last + 1
end
local dropped = n - take
if dropped > 0 then
  local total = redis.call('INCRBY', KEYS[2], dropped)
  local marker = string.gsub(ARGV[2], '__DROPPED__', tostring(total))
  if redis.call('LLEN', KEYS[1]) > cap then
    redis.call('LSET', KEYS[1], -1, marker)
  else
    redis.call('RPUSH', KEYS[1], marker)
  end
end
return take
"""

_scripts: dict[int, Script] = {}


def append_logs(logs: Iterable[Log]) -> int:
    """Append logs to their flow runs' lists in one pipeline; returns how many were stored
    (records past a run's cap are counted in its marker instead)."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for log in logs:
        if log.flow_run_id is not None:
            grouped[str(log.flow_run_id)].append(log.model_dump_json())
    if not grouped:
        return 0
    cap = get_settings().max_logs_per_run
    client = get_redis()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_APPEND)
    with translate_errors():
        pipe = client.pipeline(transaction=False)
        for run_id, rows in grouped.items():
            run_keys = [keys.flow_run_logs(run_id), keys.flow_run_logs_dropped(run_id)]
            args: list[str | int] = [cap, _marker(run_id, cap), *rows]
            script(keys=run_keys, args=args, client=pipe)
        stored = pipe.execute()
    return sum(int(n) for n in stored)


def _marker(run_id: str, cap: int) -> str:
    message = (
        f"{DROPPED} log lines were dropped: this run reached its limit of {cap} "
        "(PREFECT_LITE_MAX_LOGS_PER_RUN)"
    )
    marker = Log(
        name="prefect_lite.logs",
        level=logging.WARNING,
        message=message,
        timestamp=_time.now(),
        flow_run_id=uuid.UUID(run_id),
    )
    return marker.model_dump_json()


def read_logs(
    flow_run_id: uuid.UUID | str,
    offset: int = 0,
    limit: int = 1000,
    task_run_id: uuid.UUID | str | None = None,
    min_level: int = 0,
) -> list[Log]:
    """Logs of a flow run, oldest first, starting at position ``offset``."""
    with translate_errors():
        rows = get_redis().lrange(keys.flow_run_logs(str(flow_run_id)), offset, offset + limit - 1)
    out = [Log.model_validate_json(row) for row in rows]
    if task_run_id is not None:
        out = [log for log in out if str(log.task_run_id) == str(task_run_id)]
    if min_level:
        out = [log for log in out if log.level >= min_level]
    return out


def count_logs(flow_run_id: uuid.UUID | str) -> int:
    with translate_errors():
        return int(get_redis().llen(keys.flow_run_logs(str(flow_run_id))))
