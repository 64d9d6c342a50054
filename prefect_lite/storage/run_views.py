"""Read-only views of runs for the web UI: bounded pages from the sorted-set indexes.

Every read here goes through an index with a ``LIMIT`` (never a ``SCAN`` or a full range):

- one index (all runs, one state, one flow, one deployment): one ``ZREVRANGEBYSCORE``
  with ``LIMIT offset count+1``;
- several state indexes: the first ``offset+count+1`` ids of each, merged by score;
- a filter no index answers (a state within a flow or deployment, a tag, a pool): the
  narrowest index is read in chunks and the runs' hashes checked, up to ``MAX_EXAMINED``
  ids; past that the page says it may be incomplete rather than scanning on.

Rows are light tuples read with ``HMGET`` (no pydantic validation), so a page of 50 runs
or a run with 10,000 task runs costs one pipeline each.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import NoScriptError

from prefect_lite import _time
from prefect_lite.storage import keys, scripts
from prefect_lite.storage.connection import get_redis, translate_errors

MAX_TASK_ROWS = 50_000  # task runs a run page reads (it aggregates above a few hundred)
MAX_EXAMINED = 5000  # ids a post-filtered page may look at before it gives up
CHUNK = 250
_FIELDS = ("rec", "type", "name", "start", "end", "run_count")


@dataclass
class RunRow:
    """What a list or timeline shows of one run."""

    id: str
    name: str
    type: str
    state_name: str
    expected: float | None
    start: float | None
    end: float | None
    run_count: int
    flow_name: str = ""
    deployment_id: str | None = None
    pool: str | None = None
    queue: str | None = None
    tags: list[str] = field(default_factory=list)
    task_key: str = ""

    @property
    def duration(self) -> float | None:
        if self.start is None:
            return None
        end = self.end if self.end is not None else _time.timestamp()
        return max(0.0, end - self.start)


@dataclass
class RunFilter:
    """The filters of the Runs page; empty fields do not filter."""

    states: list[str] = field(default_factory=list)
    flow_id: str | None = None
    deployment_id: str | None = None
    pool: str | None = None
    tag: str | None = None
    after: float | None = None
    before: float | None = None


@dataclass
class RunPage:
    rows: list[RunRow]
    has_more: bool
    incomplete: bool = False  # the post-filter stopped at MAX_EXAMINED


def _float(value: Any) -> float | None:
    return float(value) if value not in (None, b"", "") else None


def _stamp(text: Any) -> float | None:
    if not text:
        return None
    return _time.ensure_utc(datetime.fromisoformat(str(text))).timestamp()


def _row(run_id: str, values: Sequence[Any]) -> RunRow | None:
    rec, typ, name, start, end, run_count = values
    if not rec:
        return None
    data = orjson.loads(rec)
    expected = data.get("expected_start_time")
    return RunRow(
        id=run_id,
        name=str(data.get("name", "")),
        type=str(typ or ""),
        state_name=str(name or typ or ""),
        expected=_stamp(expected),
        start=_float(start),
        end=_float(end),
        run_count=int(run_count or 0),
        flow_name=str(data.get("flow_name") or ""),
        deployment_id=data.get("deployment_id"),
        pool=data.get("work_pool_name"),
        queue=data.get("work_queue_name"),
        tags=list(data.get("tags") or []),
        task_key=str(data.get("task_key") or ""),
    )


def read_rows(kind: str, run_ids: Sequence[str]) -> list[RunRow]:
    """Rows of these runs in order (missing ones left out): one pipeline."""
    if not run_ids:
        return []
    key_of = keys.flow_run if kind == "flow" else keys.task_run
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for rid in run_ids:
            pipe.hmget(key_of(rid), *_FIELDS)
        found = pipe.execute()
    rows = (_row(rid, values) for rid, values in zip(run_ids, found, strict=True))
    return [row for row in rows if row is not None]


def _index(f: RunFilter) -> list[str]:
    if f.deployment_id:
        return [keys.flow_run_index_deployment(f.deployment_id)]
    if f.flow_id:
        return [keys.flow_run_index_flow(f.flow_id)]
    if f.states:
        return [keys.flow_run_index_state(s) for s in f.states]
    return [keys.flow_run_index_all()]


def _needs_check(f: RunFilter) -> bool:
    narrowed = bool(f.deployment_id or f.flow_id)
    return bool(f.pool or f.tag or (f.states and narrowed))


def _matches(row: RunRow, f: RunFilter) -> bool:
    if f.states and row.type not in f.states:
        return False
    if f.pool and row.pool != f.pool:
        return False
    return not (f.tag and f.tag not in row.tags)


def page_flow_runs(f: RunFilter, offset: int, count: int) -> RunPage:
    """One page of flow runs, newest expected start first."""
    lo = "-inf" if f.after is None else repr(f.after)
    hi = "+inf" if f.before is None else repr(f.before)
    index = _index(f)
    r: Any = get_redis()
    if not _needs_check(f):
        want = offset + count + 1
        with translate_errors():
            if len(index) == 1:
                ids = list(r.zrevrangebyscore(index[0], hi, lo, start=offset, num=count + 1))
            else:
                pipe = r.pipeline(transaction=False)
                for name in index:
                    pipe.zrevrangebyscore(name, hi, lo, start=0, num=want, withscores=True)
                merged = heapq.merge(*pipe.execute(), key=lambda m: -m[1])
                ids = [m for m, _ in merged][offset:want]
        rows = read_rows("flow", ids[:count])
        return RunPage(rows, has_more=len(ids) > count)
    return _checked_page(r, index[0], lo, hi, f, offset, count)


def _checked_page(
    r: Any, index: str, lo: str, hi: str, f: RunFilter, offset: int, count: int
) -> RunPage:
    matched: list[RunRow] = []
    examined = 0
    while examined < MAX_EXAMINED:
        with translate_errors():
            ids = list(r.zrevrangebyscore(index, hi, lo, start=examined, num=CHUNK))
        examined += len(ids)
        matched += [row for row in read_rows("flow", ids) if _matches(row, f)]
        if len(matched) > offset + count or len(ids) < CHUNK:
            return RunPage(matched[offset : offset + count], has_more=len(matched) > offset + count)
    return RunPage(matched[offset : offset + count], has_more=False, incomplete=True)


@dataclass
class Overview:
    """The dashboard's figures (see ``overview``)."""

    counts: dict[str, int]
    per_slot: list[dict[str, int]]
    late: int
    failing_ids: list[str]


def overview(
    state_types: Sequence[str],
    since: float,
    slots: tuple[float, float, int],
    late_before: float,
    failing_types: Sequence[str],
    failing_count: int,
) -> Overview:
    """In one pipeline: runs per state expected since ``since`` (later ones included),
    the same per time slot (``(first slot start, slot seconds, number of slots)``),
    scheduled runs due before ``late_before``, and the newest ids in ``failing_types``
    since ``since``. Each is a ``ZCOUNT`` or a limited range of a state index."""
    start, size, count = slots
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for state in state_types:
            pipe.zcount(keys.flow_run_index_state(state), repr(since), "+inf")
        for i in range(count):
            lo, hi = start + i * size, start + (i + 1) * size
            for state in state_types:
                pipe.zcount(keys.flow_run_index_state(state), repr(lo), f"({hi!r}")
        pipe.zcount(keys.flow_run_index_state("SCHEDULED"), "-inf", repr(late_before))
        for state in failing_types:
            pipe.zrevrangebyscore(
                keys.flow_run_index_state(state), "+inf", repr(since), start=0, num=failing_count
            )
        found = iter(pipe.execute())
    counts = {state: int(next(found)) for state in state_types}
    per_slot = [{state: int(next(found)) for state in state_types} for _ in range(count)]
    late = int(next(found))
    failing = [str(m) for _ in failing_types for m in next(found)]
    return Overview(counts, per_slot, late, failing)


def task_rows(flow_run_id: str) -> list[RunRow]:
    """Task runs of a flow run (up to ``MAX_TASK_ROWS``), by start: one round trip."""
    index = keys.task_run_index_flow_run(flow_run_id)
    flat = _evalsha("run_rows", [index, keys.task_run(""), MAX_TASK_ROWS])
    return [_task_row(flat[i : i + 8]) for i in range(0, len(flat), 8)]


@dataclass
class TaskGroup:
    """The task runs of one task within a flow run, summed up."""

    task_key: str
    count: int
    first_start: float | None
    last_end: float | None
    by_type: dict[str, int]


def task_groups(flow_run_id: str) -> list[TaskGroup]:
    """The task runs of a flow run summed up per task key, in Redis: one round trip and
    one short row per task however many task runs there are."""
    index = keys.task_run_index_flow_run(flow_run_id)
    args = [index, keys.task_run(""), MAX_TASK_ROWS, repr(_time.timestamp())]
    flat = _evalsha("run_groups", args)
    out = []
    for i in range(0, len(flat), 5):
        key, count, first, last, types = (str(v) for v in flat[i : i + 5])
        by_type = {t: int(n) for t, _, n in (part.partition("=") for part in types.split())}
        out.append(TaskGroup(_json_text(key), int(count), _float(first), _float(last), by_type))
    return out


def _evalsha(name: str, args: list[Any]) -> Any:
    r = get_redis()
    with translate_errors():
        try:
            return r.execute_command("EVALSHA", scripts.sha(name), 1, *args)
        except NoScriptError:
            scripts.load_all(r)
            return r.execute_command("EVALSHA", scripts.sha(name), 1, *args)


def _json_text(body: str) -> str:
    """A JSON string body (as cut from a record) as text."""
    return str(orjson.loads(f'"{body}"')) if "\\" in body else body


def _task_row(values: Sequence[Any]) -> RunRow:
    run_id, name, task_key, typ, state_name, start, end, run_count = values
    return RunRow(
        id=str(run_id),
        name=_json_text(str(name)),
        type=str(typ or ""),
        state_name=str(state_name or typ or ""),
        expected=None,
        start=_float(start),
        end=_float(end),
        run_count=int(run_count or 0),
        task_key=_json_text(str(task_key)),
    )


def run_extras(flow_run_id: str, pool: str | None) -> dict[str, Any]:
    """Counts the run page shows: logs, subflows, task runs, and whether a limit holds
    the run (one round trip)."""
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        pipe.llen(keys.flow_run_logs(flow_run_id))
        pipe.zrange(keys.flow_run_index_parent(flow_run_id), 0, 99)
        pipe.zscore(keys.pool_waiting(pool or ""), flow_run_id)
        pipe.zcard(keys.task_run_index_flow_run(flow_run_id))
        logs, subflows, waiting, tasks = pipe.execute()
    return {
        "log_count": int(logs),
        "task_count": int(tasks),
        "subflow_ids": [str(s) for s in subflows],
        "held_by_limit": waiting is not None,
    }


def log_rows(flow_run_id: str, start: int, stop: int) -> list[dict[str, Any]]:
    """Raw log records at positions ``start..stop`` (inclusive; negatives count from the end)."""
    with translate_errors():
        rows = get_redis().lrange(keys.flow_run_logs(flow_run_id), start, stop)
    return [orjson.loads(row) for row in rows]


def deployment_run_ids(deployment_id: str, count: int) -> list[str]:
    with translate_errors():
        found = get_redis().zrevrange(keys.flow_run_index_deployment(deployment_id), 0, count - 1)
    return [str(i) for i in found]
