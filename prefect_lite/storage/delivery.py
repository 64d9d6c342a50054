"""The RQ adapter: admitted runs go onto RQ queues, workers claim them from there.

RQ gives the delivery format and tooling: one RQ queue per (pool, work queue) whose list
holds run ids as RQ job ids, an RQ job hash per queued run (JSON serializer, payload = the
run id only), and the queue registry (``rq info`` shows our queues). prefect_lite owns the
run state, so both ends are single Lua steps instead of RQ's enqueue/dequeue:

- ``admit`` (one script per run): re-checks the run is due and deliverable, applies the
  deployment's overlap policy, takes a slot in every (pool, queue, deployment) slot set or
  in none, and only then writes the RQ job, pushes its id on the RQ queue and one wake-up
  token on the queue's bell. A run that does not fit waits in the pool's waiting set.
- ``claim`` (one script per claim): pops ids from the worker's queues in priority order and
  turns the first still-admitted SCHEDULED run PENDING under a new lease, through the same
  ``apply_state`` and transition table as ``propose_state``. Popping and claiming in one
  step means a worker killed at any instant loses no run: either the id is still queued,
  or the run is PENDING with a lease the reaper watches.

Workers block on the bells (``wait_for_work``) rather than on RQ's lists, so a wake-up
never consumes a run. Each admission pushes a token; a worker blocks only after a claim
found every queue empty, so a queued run always has a token to wake someone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.commands.core import Script
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import now as rq_now
from rq.utils import utcformat

from prefect_lite.storage import keys, scripts
from prefect_lite.storage.connection import get_redis, get_redis_bytes, translate_errors

# What ``rq worker`` would import for our jobs; prefect_lite's workers never call it.
JOB_FUNCTION = "workers.process.execute_flow_run"
BELL_CAP = 1024  # wake-up tokens kept per queue (enough to wake every blocked worker)
MAX_POPS = 200  # ids one claim may pop and drop (cancelled meanwhile) before it returns

_ADMIT = """
local due, run, ready, admitted, overlap_h, depidx, bell, jobkey, registry, waiting =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local id, now, dep, sprefix, rprefix = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local bell_cap, nslots = tonumber(ARGV[6]), tonumber(ARGV[7])
local score = redis.call('ZSCORE', due, id)
if not score then redis.call('ZREM', waiting, id) return {'GONE'} end
score = tonumber(score)
local f = redis.call('HMGET', run, 'type', 'name', 'run_count', 'adm')
if f[1] ~= 'SCHEDULED' then
  redis.call('ZREM', due, id) redis.call('ZREM', waiting, id) return {'GONE'}
end
local rc = tonumber(f[3] or '0')
if f[4] and tonumber(f[4]) >= rc then
  redis.call('ZREM', due, id) redis.call('ZREM', waiting, id) return {'DUPLICATE'}
end
if f[2] ~= 'Scheduled' and f[2] ~= 'Late' and f[2] ~= 'AwaitingRetry' then return {'HELD'} end
if score > now then return {'EARLY'} end

local function waiting_in_queue(other)
  local g = redis.call('HMGET', rprefix .. other, 'type', 'run_count', 'adm')
  return g[1] == 'SCHEDULED' and g[3] and tonumber(g[3]) >= tonumber(g[2] or '0')
end

local result = {'ADMITTED'}
local policy = 'allow'
if dep ~= '' then policy = redis.call('HGET', overlap_h, dep) or 'allow' end
if policy ~= 'allow' then
  local active = {}
  for _, t in ipairs({'PENDING', 'RUNNING', 'CANCELLING', 'PAUSED'}) do
    for _, r in ipairs(redis.call('ZINTER', 2, depidx, sprefix .. t)) do
      table.insert(active, r)
    end
  end
  for _, r in ipairs(redis.call('ZINTER', 2, depidx, admitted)) do
    if r ~= id and waiting_in_queue(r) then table.insert(active, r) end
  end
  if #active > 0 then
    if policy == 'skip' then return {'SKIP'} end
    if policy == 'buffer_one' then
      local earlier = redis.call('ZINTER', 2, depidx, due, 'WEIGHTS', 0, 1, 'WITHSCORES')
      for i = 1, #earlier, 2 do
        local other, at = earlier[i], tonumber(earlier[i + 1])
        if other ~= id and (at < score or (at == score and other < id)) then
          local g = redis.call('HMGET', rprefix .. other, 'run_count', 'adm')
          if not (g[2] and tonumber(g[2]) >= tonumber(g[1] or '0')) then return {'SKIP'} end
        end
      end
      redis.call('HSETNX', run, 'seen', now)
      return {'WAIT'}
    end
    for _, r in ipairs(active) do table.insert(result, r) end
  end
end

-- Slots: one in every set, or none (then the run waits, and says which set was full).
for i = 1, nslots do
  local slot, limit = KEYS[10 + i], ARGV[7 + i]
  if limit ~= '' and redis.call('ZSCORE', slot, id) == false then
    if redis.call('ZCARD', slot) >= tonumber(limit) then
      redis.call('ZADD', waiting, score, id)
      result[1] = 'FULL:' .. i
      return result
    end
  end
end
local held = {}
for i = 1, nslots do
  redis.call('ZADD', KEYS[10 + i], now, id)
  held[#held + 1] = KEYS[10 + i]
end
if nslots > 0 then redis.call('HSET', run, 'slots', table.concat(held, ' ')) end

redis.call('ZREM', due, id)
redis.call('ZREM', waiting, id)
redis.call('HSET', run, 'adm', rc)
redis.call('ZADD', admitted, score, id)
local job = {}
for i = 8 + nslots, #ARGV do job[#job + 1] = ARGV[i] end
if #job > 0 then redis.call('HSET', jobkey, unpack(job)) end
redis.call('RPUSH', ready, id)
redis.call('SADD', registry, ready)
redis.call('RPUSH', bell, '1')
redis.call('LTRIM', bell, -bell_cap, -1)
return result
"""

# KEYS: lease zset, admitted zset, due zset, then the RQ queue lists in priority order.
# ARGV: Pending state JSON, now, state index prefix, lease token, lease expiry,
#       run key prefix, RQ job key prefix, max pops, admit list, cancel channel,
#       history key suffix.
# Returns {run id, queue list key, version, state JSON}, {} when the queues are empty, or
# {'', 'MORE'} when it dropped MAX_POPS stale ids (call again).
_CLAIM = """
local leases, admitted, due = KEYS[1], KEYS[2], KEYS[3]
local pending, now, sprefix, token, expiry = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local rprefix, jprefix, budget = ARGV[6], ARGV[7], tonumber(ARGV[8])
local a = {pending, 'PENDING', 'Pending', now, sprefix, due, '0', leases, expiry, token,
           ARGV[9], ARGV[10]}
for q = 4, #KEYS do
  while true do
    local id = redis.call('LPOP', KEYS[q])
    if not id then break end
    redis.call('DEL', jprefix .. id)
    local key = rprefix .. id
    local f = redis.call('HMGET', key, 'id', 'type', 'ver', 'run_count', 'adm')
    local admitted_now = f[5] and tonumber(f[5]) >= tonumber(f[4] or '0')
    if f[1] and admitted_now and T[(f[2] or '') .. '>PENDING'] == 'A' then
      local ver = apply_state(key, key .. ARGV[11], id, f[2], tonumber(f[3] or '0'), a, 1)
      redis.call('ZREM', admitted, id)
      return {id, KEYS[q], tostring(ver), pending}
    end
    budget = budget - 1
    if budget <= 0 then return {'', 'MORE'} end
  end
end
return {}
"""

_scripts: dict[tuple[int, str], Script] = {}


def _script(name: str, source: str) -> Script:
    r = get_redis()
    key = (id(r), name)
    script = _scripts.get(key)
    if script is None:
        script = _scripts[key] = r.register_script(source)
    return script


def check_rq_names() -> None:
    """Fail loudly if RQ renamed the keys ``keys`` mirrors (tests call this)."""
    assert Queue.redis_queue_namespace_prefix == keys.RQ_QUEUE_PREFIX
    assert Queue.redis_queues_keys == keys.RQ_QUEUES
    assert Job.redis_job_namespace_prefix == keys.RQ_JOB_PREFIX


def rq_queue(pool: str, queue: str) -> Queue:
    """The RQ queue object of a work queue (for RQ's own tools: counts, job ids)."""
    return Queue(
        keys.rq_queue_name(pool, queue), connection=get_redis_bytes(), serializer=JSONSerializer
    )


def job_fields(run_id: str, pool: str, queue: str) -> list[Any]:
    """The RQ job hash of a queued run, as RQ writes it, flattened to field/value pairs."""
    job = Job.create(
        JOB_FUNCTION,
        args=[run_id],
        id=run_id,
        connection=get_redis_bytes(),
        serializer=JSONSerializer,
        origin=keys.rq_queue_name(pool, queue),
        description=f"flow run {run_id}",
    )
    fields = job.to_dict()
    fields["status"] = JobStatus.QUEUED.value
    fields["enqueued_at"] = utcformat(rq_now())
    flat: list[Any] = []
    for name, value in fields.items():
        flat += [name, value.value if isinstance(value, JobStatus) else value]
    return flat


@dataclass(frozen=True)
class Admission:
    """One run to admit onto the RQ queue of ``pool``/``queue``."""

    run_id: str
    pool: str
    queue: str
    deployment_id: str | None
    slots: Sequence[tuple[str, int | None]]  # (slot set key, limit or None)


def admit(entries: Sequence[Admission], now: float) -> list[list[str]]:
    """Run the admission script for each entry: ``[outcome, ids to cancel...]`` each.

    Outcomes: ADMITTED, FULL:<n> (slot set n, from 1, is full; the run waits), GONE,
    DUPLICATE, HELD, EARLY, SKIP, WAIT (see ``orchestration.admission``).
    """
    if not entries:
        return []
    script = _script("admit", _ADMIT)
    due, admitted, overlap = (
        keys.scheduled_due(),
        keys.scheduled_admitted(),
        keys.deployment_overlap(),
    )
    sprefix, rprefix = keys.flow_run_state_index_prefix(), keys.flow_run_key_prefix()
    with translate_errors():
        pipe = get_redis().pipeline(transaction=False)
        for e in entries:
            dep = e.deployment_id or ""
            script_keys = [
                due,
                keys.flow_run(e.run_id),
                keys.pool_queue_ready(e.pool, e.queue),
                admitted,
                overlap,
                keys.flow_run_index_deployment(dep) if dep else due,
                keys.queue_bell(e.pool, e.queue),
                keys.rq_job(e.run_id),
                keys.RQ_QUEUES,
                keys.pool_waiting(e.pool),
                *[slot for slot, _ in e.slots],
            ]
            args: list[Any] = [e.run_id, repr(now), dep, sprefix, rprefix, BELL_CAP, len(e.slots)]
            args += ["" if limit is None else str(limit) for _, limit in e.slots]
            args += job_fields(e.run_id, e.pool, e.queue)
            script(keys=script_keys, args=args, client=pipe)
        return [[str(x) for x in out] for out in pipe.execute()]


@dataclass(frozen=True)
class Claimed:
    """A run a worker now holds: PENDING under ``lease``."""

    run_id: str
    queue: str  # work queue name
    version: int
    lease: str


def claim(
    pool: str,
    queues: Sequence[str],
    lease: str,
    lease_expiry: float,
    pending_state_json: str,
    now: float,
) -> Claimed | None:
    """Pop-and-claim the next deliverable run from ``queues`` (priority order), or None."""
    if not queues:
        return None
    script = scripts.apply_source() + _CLAIM
    lists = [keys.pool_queue_ready(pool, q) for q in queues]
    args: list[Any] = [
        pending_state_json,
        repr(now),
        keys.flow_run_state_index_prefix(),
        lease,
        repr(lease_expiry),
        keys.flow_run_key_prefix(),
        keys.RQ_JOB_PREFIX,
        MAX_POPS,
        keys.admit_notify(),
        keys.cancel_channel(),
        keys.history_of(""),
    ]
    runner = _script("claim", script)
    script_keys = [keys.leases(), keys.scheduled_admitted(), keys.scheduled_due(), *lists]
    with translate_errors():
        while True:
            out = runner(keys=script_keys, args=args)
            if not out:
                return None
            if out[0]:
                queue = queues[lists.index(out[1])]
                return Claimed(run_id=str(out[0]), queue=queue, version=int(out[2]), lease=lease)


def wait_for_work(pool: str, queues: Sequence[str], timeout: float) -> str | None:
    """Block until there may be work: a run on one of ``queues`` (returns ``""``) or a
    crashed run whose hooks must run (returns its id); None when ``timeout`` passed."""
    hooks = keys.pool_hooks(pool)
    watched = [hooks, *[keys.queue_bell(pool, q) for q in queues]]
    with translate_errors():
        got = get_redis().blpop(watched, timeout=max(timeout, 0.01))
    if got is None:
        return None
    return str(got[1]) if got[0] == hooks else ""


# ----------------------------------------------------------------------------- notices


def pop_admit_notices(timeout: float | None, limit: int = 100) -> list[str]:
    """Run ids whose slots were released: wait up to ``timeout`` for the first (None: do
    not wait), then take what else is there, up to ``limit``."""
    key = keys.admit_notify()
    r: Any = get_redis()
    with translate_errors():
        if timeout is not None:
            first = r.blpop([key], timeout=max(timeout, 0.01))
            if first is None:
                return []
            rest = r.lpop(key, limit - 1) or []
            return [str(first[1]), *[str(x) for x in rest]]
        return [str(x) for x in r.lpop(key, limit) or []]


def waiting_runs(pool: str, limit: int) -> list[str]:
    with translate_errors():
        return [str(x) for x in get_redis().zrange(keys.pool_waiting(pool), 0, limit - 1)]


def forget_waiting(pool: str, run_ids: Sequence[str]) -> None:
    if run_ids:
        with translate_errors():
            get_redis().zrem(keys.pool_waiting(pool), *run_ids)


def push_crash_hooks(pool: str, run_id: str) -> None:
    """Ask a worker of ``pool`` to run the crashed run's on_crashed hooks."""
    with translate_errors():
        get_redis().rpush(keys.pool_hooks(pool), run_id)


def pop_crash_hooks(pool: str) -> str | None:
    with translate_errors():
        got = get_redis().lpop(keys.pool_hooks(pool))
    return str(got) if got is not None else None


def subscribe_cancellations() -> Any:
    """A pub/sub subscribed to cancel requests: ``get_message`` data is a run id."""
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    with translate_errors():
        pubsub.subscribe(keys.cancel_channel())
    return pubsub


def mark_waiting(pool: str, runs: Sequence[tuple[str, float]]) -> None:
    """Note due runs a limit or a pause holds back, so a release or resume admits them."""
    if runs:
        with translate_errors():
            get_redis().zadd(keys.pool_waiting(pool), dict(runs), nx=True)


def due_runs_of(deployment_ids: Sequence[str], before: float, limit: int) -> list[str]:
    """Ids of the deployments' runs in the due set with a time up to ``before``, oldest
    first: what a runner serving those deployments (they have no pool) may claim."""
    r: Any = get_redis()
    scored: list[tuple[float, str]] = []
    with translate_errors():
        for dep in deployment_ids:
            rows = r.zinter(
                {keys.scheduled_due(): 1, keys.flow_run_index_deployment(dep): 0},
                withscores=True,
            )
            scored += [(float(s), str(m)) for m, s in rows if float(s) <= before]
    return [run_id for _, run_id in sorted(scored)[:limit]]
