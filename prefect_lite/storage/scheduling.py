"""The scheduler's Redis state: planning index, plan state, admission, cleanup of unstarted runs.

Every step here is safe to run from several scheduler replicas at once: claims are leases
on a sorted-set score, admission and deletion are single Lua scripts that re-check the run
before touching it, and runs are created elsewhere with create-if-absent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.commands.core import Script

from prefect_lite.schemas import FlowRun
from prefect_lite.storage import keys, runs
from prefect_lite.storage.connection import get_redis, translate_errors

# KEYS: plan index.  ARGV: now, limit, lease_until.  Claims due entries by pushing their
# score to the lease end, so other replicas skip them until then (or until re-planned).
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""

# KEYS: plan index.  ARGV: deployment id, claimed score, next score ('' = drop).
# A deployment saved meanwhile was reset to 0: leave it so it is planned again at once.
_FINISH = """
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not cur or tonumber(cur) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '' then redis.call('ZREM', KEYS[1], ARGV[1])
else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
return 1
"""

# KEYS: run hash, then every key and index the run is in (see delete_unstarted).
# ARGV: run id, number of plain keys among KEYS (deleted), the rest are zsets to ZREM from.
_DELETE_UNSTARTED = """
local f = redis.call('HMGET', KEYS[1], 'type', 'run_count', 'adm')
if f[1] ~= 'SCHEDULED' or tonumber(f[2] or '0') > 0 or f[3] then return 0 end
local plain = tonumber(ARGV[2])
for i = 1, plain do redis.call('DEL', KEYS[i]) end
for i = plain + 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""

_scripts: dict[tuple[int, str], Script] = {}


def _script(name: str, source: str) -> Script:
    r = get_redis()
    key = (id(r), name)
    script = _scripts.get(key)
    if script is None:
        script = _scripts[key] = r.register_script(source)
    return script


# ----------------------------------------------------------------------------- planning


def claim_for_planning(now: float, limit: int, lease_seconds: float) -> tuple[list[str], float]:
    """Up to ``limit`` deployment ids due for planning, leased until ``now + lease``."""
    lease_until = now + lease_seconds
    with translate_errors():
        ids = _script("claim", _CLAIM)(
            keys=[keys.plan_index()], args=[repr(now), limit, repr(lease_until)]
        )
    return [str(i) for i in ids], lease_until


def finish_planning(entries: Sequence[tuple[str, float, float | None]]) -> None:
    """Set each ``(deployment id, claimed score, next plan time or None)``."""
    if not entries:
        return
    script = _script("finish", _FINISH)
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for dep_id, claimed, next_at in entries:
            args = [dep_id, repr(claimed), "" if next_at is None else repr(next_at)]
            script(keys=[keys.plan_index()], args=args, client=pipe)
        pipe.execute()


def next_plan_time() -> float | None:
    with translate_errors():
        first = get_redis().zrange(keys.plan_index(), 0, 0, withscores=True)
    return float(first[0][1]) if first else None


def read_plan_states(deployment_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not deployment_ids:
        return {}
    with translate_errors():
        rows = get_redis().hmget(keys.plan_state(), list(deployment_ids))
    return {d: orjson.loads(row) for d, row in zip(deployment_ids, rows, strict=True) if row}


def write_plan_states(states: dict[str, dict[str, Any]]) -> None:
    if states:
        with translate_errors():
            get_redis().hset(
                keys.plan_state(), mapping={d: orjson.dumps(s).decode() for d, s in states.items()}
            )


# ----------------------------------------------------------------------------- unstarted runs


@dataclass(frozen=True)
class QueuedRun:
    """A SCHEDULED run with its admission facts."""

    run: FlowRun
    admitted: bool


def scheduled_runs_of(deployment_id: uuid.UUID | str) -> list[QueuedRun]:
    """The deployment's runs in a SCHEDULED state (future and due), oldest first."""
    dep_key = keys.flow_run_index_deployment(str(deployment_id))
    sched_key = keys.flow_run_index_state("SCHEDULED")
    r: Any = get_redis()
    with translate_errors():
        ids = [str(i) for i in r.zinter([dep_key, sched_key])]
        pipe = r.pipeline(transaction=False)
        for rid in ids:
            pipe.hmget(keys.flow_run(rid), "run_count", "adm")
        flags = dict(zip(ids, pipe.execute(), strict=True))
    found: list[QueuedRun] = []
    for run in runs.read_runs("flow", ids):
        count, adm = flags[str(run.id)]
        found.append(QueuedRun(run, adm is not None and int(adm) >= int(count or 0)))
    found.sort(key=lambda q: q.run.expected_start_time or q.run.created)
    return found


def unstarted_auto_runs(deployment_id: uuid.UUID | str) -> list[FlowRun]:
    """Auto-scheduled runs of the deployment that never ran and were never admitted."""
    return [
        q.run
        for q in scheduled_runs_of(deployment_id)
        if q.run.auto_scheduled and not q.admitted and q.run.run_count == 0
    ]


def delete_unstarted(flow_runs: Sequence[FlowRun]) -> int:
    """Delete runs that are still SCHEDULED, never ran and were never admitted; how many."""
    if not flow_runs:
        return 0
    script = _script("delete", _DELETE_UNSTARTED)
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for run in flow_runs:
            rid = str(run.id)
            plain = [
                keys.flow_run(rid),
                keys.flow_run_history(rid),
                keys.flow_run_logs(rid),
                keys.flow_run_logs_dropped(rid),
                keys.flow_run_input(rid),
            ]
            indexes = [
                keys.flow_run_index_all(),
                keys.flow_run_index_flow(str(run.flow_id)),
                keys.flow_run_index_state("SCHEDULED"),
                keys.scheduled_due(),
                keys.scheduled_admitted(),
            ]
            if run.deployment_id:
                indexes.append(keys.flow_run_index_deployment(str(run.deployment_id)))
            script(keys=plain + indexes, args=[rid, len(plain)], client=pipe)
        return sum(int(x) for x in pipe.execute())


# ----------------------------------------------------------------------------- admission


def due_page(now: float, offset: int, limit: int) -> list[tuple[str, float]]:
    """Due flow run ids with their scheduled time, oldest first."""
    r: Any = get_redis()
    with translate_errors():
        rows = r.zrangebyscore(
            keys.scheduled_due(), "-inf", repr(now), start=offset, num=limit, withscores=True
        )
    return [(str(m), float(s)) for m, s in rows]


def next_due_after(now: float) -> float | None:
    """The scheduled time of the first run due after ``now``."""
    with translate_errors():
        rows = get_redis().zrangebyscore(
            keys.scheduled_due(), f"({now!r}", "+inf", start=0, num=1, withscores=True
        )
    return float(rows[0][1]) if rows else None


@dataclass(frozen=True)
class RunFacts:
    """What admission needs to know about a run, read without building the record."""

    run_id: str
    record: dict[str, Any]
    state_type: str | None
    state_name: str | None
    admitted: bool  # admitted since it last ran
    seen: bool  # a scheduler deferred it on time (overlap buffer)


def read_facts(run_ids: Sequence[str]) -> list[RunFacts]:
    """Facts of the runs that exist, in order."""
    if not run_ids:
        return []
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for rid in run_ids:
            pipe.hmget(keys.flow_run(rid), "rec", "type", "name", "run_count", "adm", "seen")
        rows = pipe.execute()
    return [
        RunFacts(
            rid,
            orjson.loads(rec),
            typ,
            name,
            admitted=adm is not None and int(adm) >= int(count or 0),
            seen=seen is not None,
        )
        for rid, (rec, typ, name, count, adm, seen) in zip(run_ids, rows, strict=True)
        if rec
    ]


# ----------------------------------------------------------------------------- late runs


def scores_between(key: str, low: float | None, high: float, limit: int) -> list[tuple[str, float]]:
    """Members of zset ``key`` with ``low < score <= high`` (``low`` None: no bound)."""
    lo = "-inf" if low is None else f"({low!r}"
    r: Any = get_redis()
    with translate_errors():
        rows = r.zrangebyscore(key, lo, repr(high), start=0, num=limit, withscores=True)
    return [(str(m), float(s)) for m, s in rows]


def read_state_facts(
    run_ids: Sequence[str],
) -> list[tuple[str, str | None, str | None, int, str | None, bool]]:
    """``(id, type, name, version, state JSON, admitted)`` of each run, in order."""
    if not run_ids:
        return []
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for rid in run_ids:
            pipe.hmget(keys.flow_run(rid), "type", "name", "ver", "state", "run_count", "adm")
        rows = pipe.execute()
    out = []
    for rid, (typ, name, ver, state, count, adm) in zip(run_ids, rows, strict=True):
        admitted = adm is not None and int(adm) >= int(count or 0)
        out.append((rid, typ, name, int(ver or 0), state, admitted))
    return out


def forget(key: str, run_ids: Sequence[str]) -> None:
    """Remove ids from a scheduler zset (``keys.scheduled_admitted()`` or the due set)."""
    if run_ids:
        with translate_errors():
            get_redis().zrem(key, *run_ids)
