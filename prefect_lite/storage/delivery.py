"""The RQ adapter: admitted runs go onto RQ queues, workers claim them from there.

RQ gives the delivery format and tooling: one RQ queue per (pool, work queue) whose list
holds run ids as RQ job ids, an RQ job hash per queued run (JSON serializer, payload = the
run id only), and the queue registry (``rq info`` shows our queues). prefect_lite owns the
run state, so both ends are single Lua steps instead of RQ's enqueue/dequeue:

- ``admit`` (one script per run, in ``storage.admitting``): re-checks the run is due and
  deliverable, applies the deployment's overlap policy, takes a slot in every (pool,
  queue, deployment) slot set or in none, and only then writes the RQ job, pushes its id
  on the RQ queue and one wake-up token on the queue's bell. A run that does not fit
  waits in the pool's waiting set.
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
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer

from prefect_lite.storage import keys, scripts
from prefect_lite.storage.admitting import JOB_FUNCTION as JOB_FUNCTION
from prefect_lite.storage.admitting import Admission as Admission
from prefect_lite.storage.admitting import PreparedAdmit as PreparedAdmit
from prefect_lite.storage.admitting import admit as admit
from prefect_lite.storage.admitting import job_fields as job_fields
from prefect_lite.storage.admitting import prepare_admit as prepare_admit
from prefect_lite.storage.connection import get_redis, get_redis_bytes, translate_errors

MAX_POPS = 200  # ids one claim may pop and drop (cancelled meanwhile) before it returns

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
