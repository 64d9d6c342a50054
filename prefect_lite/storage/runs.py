"""Flow run and task run repositories.

A run is a hash (see ``keys``): the static record as JSON in ``rec`` plus fields the
``propose_state`` script maintains. Writes of many task-run changes can be queued in a
``RunBatch`` and sent in one pipeline (the engine's background writer does this).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.client import Pipeline
from redis.exceptions import NoScriptError

from prefect_lite import _time, serializers
from prefect_lite.schemas import FlowRun, OrchestrationResult, TaskRun
from prefect_lite.states import State, StateType, canonical
from prefect_lite.storage import keys, scripts
from prefect_lite.storage.connection import get_redis, translate_errors

Kind = Literal["flow", "task"]
# Fields the run hash keeps itself; the stored record leaves them out.
RECORD_EXCLUDE = set(
    {"state", "state_type", "state_name", "version", "run_count", "start_time", "end_time"}
)


@dataclass
class Proposal:
    """Arguments of one state proposal."""

    state: State
    expected_version: int | None = None
    lease: str | None = None
    new_lease: str | None = None  # '-' clears the lease
    lease_expiry: float | None = None
    force: bool = False


def _run_key(kind: Kind, run_id: str) -> str:
    return keys.flow_run(run_id) if kind == "flow" else keys.task_run(run_id)


def _shared_args(kind: Kind, p: Proposal) -> list[Any]:
    state = p.state
    state_json = serializers.dumps(state.to_record())
    scheduled = state.state_details.scheduled_time
    is_flow = kind == "flow"
    return [
        state_json,
        canonical(state.type).value,
        state.name or "",
        repr(_time.timestamp()),
        keys.flow_run_state_index_prefix() if is_flow else "",
        keys.scheduled_due() if is_flow else "",
        repr(scheduled.timestamp()) if scheduled else "0",
        keys.leases() if is_flow else "",
        repr(p.lease_expiry) if p.lease_expiry is not None else "",
        p.new_lease or "",
        keys.admit_notify() if is_flow else "",
        keys.cancel_channel() if is_flow else "",
    ]


def _result(raw: Sequence[Any]) -> OrchestrationResult:
    status, version, state_json = raw[0], int(raw[1]), raw[2]
    state = State.from_record(serializers.loads(state_json)) if state_json else None
    if status in ("ACCEPT", "TURN"):
        return OrchestrationResult(status="ACCEPT", state=state, version=version)
    if status == "NOTFOUND":
        return OrchestrationResult(status="ABORT", state=None, details="run not found")
    detail = "stale version or lease" if status == "STALE" else "transition not allowed"
    return OrchestrationResult(status="REJECT", state=state, version=version, details=detail)


class RunBatch:
    """Queue creates and proposals; ``execute()`` sends them in one pipeline, in order."""

    def __init__(self) -> None:
        self._ops: list[tuple[str, Kind, Any]] = []

    def __len__(self) -> int:
        return len(self._ops)

    def create(self, kind: Kind, run: FlowRun | TaskRun, state: State) -> None:
        self._ops.append(("create", kind, (run, state)))

    def propose(self, kind: Kind, run_id: uuid.UUID | str, proposal: Proposal) -> None:
        self._ops.append(("propose", kind, (str(run_id), proposal)))

    def execute(self) -> list[Any]:
        """Send the queued operations in one pipeline; results in order.

        Scripts are called by SHA. After a server restart (script cache empty) the
        operations from the first NOSCRIPT answer on are re-sent once scripts are loaded.
        """
        ops, self._ops = self._ops, []
        results: list[Any] = []
        r = get_redis()
        with translate_errors():
            for _attempt in range(2):
                pipe = r.pipeline(transaction=False)
                for op, kind, args in ops:
                    if op == "create":
                        _queue_create(pipe, kind, *args)
                    else:
                        _queue_propose(pipe, kind, *args)
                out = pipe.execute(raise_on_error=False) if ops else []
                missing = next(
                    (i for i, res in enumerate(out) if isinstance(res, NoScriptError)), None
                )
                if missing is None:
                    return results + out
                results += out[:missing]
                ops = ops[missing:]
                scripts.load_all(r)
        raise RuntimeError("Redis refused to load the prefect_lite scripts")


def _create_keys(kind: Kind, run: FlowRun | TaskRun, idem: str) -> list[str]:
    rid = str(run.id)
    key = _run_key(kind, rid)
    out = [key, keys.history_of(key), idem]
    if isinstance(run, FlowRun):
        out.append(keys.flow_run_index_all())
        out.append(keys.flow_run_index_flow(str(run.flow_id)))
        if run.deployment_id:
            out.append(keys.flow_run_index_deployment(str(run.deployment_id)))
        if run.parent_flow_run_id:
            out.append(keys.flow_run_index_parent(str(run.parent_flow_run_id)))
    elif run.flow_run_id:
        out.append(keys.task_run_index_flow_run(str(run.flow_run_id)))
    return out


def _queue_create(pipe: Pipeline, kind: Kind, run: FlowRun | TaskRun, state: State) -> None:
    idem = ""
    if isinstance(run, FlowRun) and run.idempotency_key:
        scope = str(run.deployment_id or run.flow_id)
        idem = keys.flow_run_idempotency(scope, run.idempotency_key)
    record = run.model_dump_json(exclude=RECORD_EXCLUDE)
    when = run.expected_start_time or state.state_details.scheduled_time or run.created
    args = [str(run.id), record, repr(when.timestamp())]
    args += _shared_args(kind, Proposal(state=state))
    _evalsha(pipe, "create", _create_keys(kind, run, idem), args)


def _queue_propose(pipe: Pipeline, kind: Kind, run_id: str, p: Proposal) -> None:
    key = _run_key(kind, run_id)
    _evalsha(pipe, "propose", [key, keys.history_of(key)], _propose_head(p) + _shared_args(kind, p))


def _propose_head(p: Proposal) -> list[str]:
    return [
        "" if p.expected_version is None else str(p.expected_version),
        p.lease or "",
        "1" if p.force else "",
    ]


def _evalsha(pipe: Pipeline, name: str, script_keys: list[str], args: list[Any]) -> None:
    pipe.execute_command("EVALSHA", scripts.sha(name), len(script_keys), *script_keys, *args)


# ------------------------------------------------------------------------- single calls


def create_run(kind: Kind, run: FlowRun | TaskRun, state: State) -> tuple[bool, uuid.UUID]:
    """Create the run with its first state unless it (or its idempotency key) exists."""
    batch = RunBatch()
    batch.create(kind, run, state)
    status, run_id = batch.execute()[0]
    return status == "CREATED", uuid.UUID(run_id)


def propose(kind: Kind, run_id: uuid.UUID | str, proposal: Proposal) -> OrchestrationResult:
    """One proposal, one round trip (EVALSHA straight on the connection, no pipeline)."""
    key = _run_key(kind, str(run_id))
    args = [key, keys.history_of(key), *_propose_head(proposal), *_shared_args(kind, proposal)]
    r = get_redis()
    with translate_errors():
        try:
            raw = r.execute_command("EVALSHA", scripts.sha("propose"), 2, *args)
        except NoScriptError:
            scripts.load_all(r)
            raw = r.execute_command("EVALSHA", scripts.sha("propose"), 2, *args)
    return _result(raw)


def _assemble(kind: Kind, h: dict[str, str]) -> FlowRun | TaskRun | None:
    if not h or "rec" not in h:
        return None
    model = FlowRun if kind == "flow" else TaskRun
    run = model.model_validate_json(h["rec"])
    if h.get("state"):
        run.state = State.from_record(serializers.loads(h["state"]))
        run.state_type = run.state.type
        run.state_name = run.state.name
    run.version = int(h.get("ver", 0))
    run.run_count = int(h.get("run_count", 0))
    if h.get("start"):
        run.start_time = _time.from_timestamp(float(h["start"]))
    if h.get("end"):
        run.end_time = _time.from_timestamp(float(h["end"]))
    return run


def read_runs(kind: Kind, run_ids: Iterable[uuid.UUID | str]) -> list[Any]:
    """Runs in the order of ``run_ids``; missing ones are skipped."""
    ids = [str(i) for i in run_ids]
    if not ids:
        return []
    r = get_redis()
    with translate_errors():
        pipe = r.pipeline(transaction=False)
        for rid in ids:
            pipe.hgetall(_run_key(kind, rid))
        rows = pipe.execute()
    return [run for run in (_assemble(kind, h) for h in rows) if run is not None]


def read_run(kind: Kind, run_id: uuid.UUID | str) -> Any:
    found = read_runs(kind, [run_id])
    return found[0] if found else None


def update_record(kind: Kind, run_id: uuid.UUID | str, **fields: Any) -> None:
    """Change static record fields (name, policy, worker...) of an existing run."""
    current = read_run(kind, run_id)
    if current is None:
        return
    updated = current.model_copy(update={**fields, "updated": _time.now()})
    with translate_errors():
        get_redis().hset(
            _run_key(kind, str(run_id)), "rec", updated.model_dump_json(exclude=RECORD_EXCLUDE)
        )


def history(kind: Kind, run_id: uuid.UUID | str) -> list[State]:
    key = keys.history_of(_run_key(kind, str(run_id)))
    with translate_errors():
        rows = get_redis().lrange(key, 0, -1)
    return [State.from_record(serializers.loads(row)) for row in rows]


@dataclass
class RunQuery:
    """Filter for listing flow runs; every field optional."""

    states: list[StateType] = field(default_factory=list)
    flow_id: uuid.UUID | None = None
    deployment_id: uuid.UUID | None = None
    tags: list[str] = field(default_factory=list)
    start_after: float | None = None
    start_before: float | None = None
    limit: int = 200
    offset: int = 0
    newest_first: bool = True


def query_flow_run_ids(q: RunQuery) -> list[str]:
    """Ids matching the query, via the narrowest sorted-set index."""
    lo = "-inf" if q.start_after is None else repr(q.start_after)
    hi = "+inf" if q.start_before is None else repr(q.start_before)
    r: Any = get_redis()
    if q.deployment_id:
        index = [keys.flow_run_index_deployment(str(q.deployment_id))]
    elif q.flow_id:
        index = [keys.flow_run_index_flow(str(q.flow_id))]
    elif q.states:
        index = [keys.flow_run_index_state(canonical(s).value) for s in q.states]
    else:
        index = [keys.flow_run_index_all()]
    needs_post_filter = bool(q.tags) or (
        bool(q.states) and (q.deployment_id is not None or q.flow_id is not None)
    )
    want = q.offset + q.limit
    with translate_errors():
        if len(index) == 1 and not needs_post_filter:
            if q.newest_first:
                return list(r.zrevrangebyscore(index[0], hi, lo, start=q.offset, num=q.limit))
            return list(r.zrangebyscore(index[0], lo, hi, start=q.offset, num=q.limit))
        scored: list[tuple[float, str]] = []
        for name in index:
            scored += [(s, m) for m, s in r.zrangebyscore(name, lo, hi, withscores=True)]
    scored.sort(reverse=q.newest_first)
    ids = [m for _, m in scored]
    if not needs_post_filter:
        return ids[q.offset : want]
    wanted_states = {canonical(s) for s in q.states}
    matched: list[str] = []
    for run in read_runs("flow", ids):
        if wanted_states and run.state_type not in wanted_states:
            continue
        if q.tags and not set(q.tags) <= set(run.tags):
            continue
        matched.append(str(run.id))
        if len(matched) >= want:
            break
    return matched[q.offset : want]


def task_run_ids_of(flow_run_id: uuid.UUID | str) -> list[str]:
    with translate_errors():
        ids = get_redis().zrange(keys.task_run_index_flow_run(str(flow_run_id)), 0, -1)
    return [str(i) for i in ids]


def subflow_run_ids_of(flow_run_id: uuid.UUID | str) -> list[str]:
    """Flow runs created inside this one (its subflows), oldest first."""
    with translate_errors():
        ids = get_redis().zrange(keys.flow_run_index_parent(str(flow_run_id)), 0, -1)
    return [str(i) for i in ids]


def claim_slots(
    run_id: uuid.UUID | str, slots: Sequence[tuple[str, int | None]]
) -> tuple[bool, int | None]:
    """Take a slot in every ``(slot set key, limit)`` for the run, or none of them.

    Returns ``(True, None)`` on success, ``(False, i)`` when slot set ``i`` is full. The
    slots are released by ``propose_state`` when the run ends, is rescheduled or suspended.
    """
    rid = str(run_id)
    script_keys = [keys.flow_run(rid), *[key for key, _ in slots]]
    args = [rid, repr(_time.timestamp()), *["" if lim is None else str(lim) for _, lim in slots]]
    r = get_redis()
    with translate_errors():
        try:
            raw = r.execute_command(
                "EVALSHA", scripts.sha("claim"), len(script_keys), *script_keys, *args
            )
        except NoScriptError:
            scripts.load_all(r)
            raw = r.execute_command(
                "EVALSHA", scripts.sha("claim"), len(script_keys), *script_keys, *args
            )
    return (True, None) if int(raw[0]) == 1 else (False, int(raw[1]) - 1)
