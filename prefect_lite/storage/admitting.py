"""Admission onto RQ: the script that hands one due run to its work queue's RQ queue.

One Lua script per run (``admit``) re-checks the run is due and deliverable, applies the
deployment's overlap policy, takes a slot in every (pool, queue, deployment) slot set or
in none, and only then writes the RQ job hash (as RQ writes it), pushes its id on the RQ
queue and one wake-up token on the queue's bell. ``prepare_admit`` packs the calls ahead
of time so a caller that knows when runs fall due sends them at that instant.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now as rq_now
from rq.utils import utcformat

from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis, get_redis_bytes, translate_errors

# What ``rq worker`` would import for our jobs; prefect_lite's workers never call it.
JOB_FUNCTION = "workers.process.execute_flow_run"
BELL_CAP = 1024  # wake-up tokens kept per queue (enough to wake every blocked worker)

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
-- RQ's job hash: the fields shared by the queue's jobs, each ended by NUL, then per run.
local job, shared, at = {}, ARGV[8 + nslots], 1
while at <= #shared do
  local stop = string.find(shared, '\\0', at, true)
  job[#job + 1] = string.sub(shared, at, stop - 1)
  at = stop + 1
end
for i = 9 + nslots, #ARGV do job[#job + 1] = ARGV[i] end
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
def job_fields(run_id: str, pool: str, queue: str) -> list[Any]:
    """The RQ job hash of a queued run, as RQ writes it, flattened to field/value pairs."""
    return _JobTemplate(pool, queue).fields(run_id)


class _JobTemplate:
    """RQ's job hash for one (pool, queue), made by RQ once; per run only the fields that
    carry the run id are rebuilt (``Job.create`` per run cost more than the admission)."""

    def __init__(self, pool: str, queue: str) -> None:
        job = Job.create(
            JOB_FUNCTION,
            args=[""],
            id="-",
            connection=get_redis_bytes(),
            serializer=JSONSerializer,
            origin=keys.rq_queue_name(pool, queue),
            description="",
        )
        fields = job.to_dict()
        fields["status"] = JobStatus.QUEUED.value
        fields["enqueued_at"] = utcformat(rq_now())
        self._shared: list[Any] = []
        for name, value in fields.items():
            if name not in _PER_RUN:
                self._shared += [name, value.value if isinstance(value, JobStatus) else value]
        # One argument instead of ~30 per admission script call: packing them cost more
        # than the script itself.
        self.shared = "".join(f"{x}\0" for x in self._shared)

    def per_run(self, run_id: str) -> list[Any]:
        job_tuple: tuple[Any, ...] = (JOB_FUNCTION, None, [run_id], {})
        return [
            "data",
            zlib.compress(JSONSerializer.dumps(job_tuple)),
            "description",
            f"flow run {run_id}",
        ]

    def fields(self, run_id: str) -> list[Any]:
        return [*self._shared, *self.per_run(run_id)]


_PER_RUN = ("data", "description")


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
    return prepare_admit(entries, now).send()


class PreparedAdmit:
    """Admission script calls packed ahead of time (``prepare_admit``), sent by ``send``.

    Packing the arguments is most of the client's cost per run; a caller that knows when
    runs fall due packs them before that instant and sends the bytes at it. The scripts
    re-check everything when they run, so packing early changes nothing they decide.
    """

    def __init__(self, commands: list[tuple[Any, ...]], sha: str, source: str) -> None:
        self._commands = commands
        self._count = len(commands)
        self._sha, self._source = sha, source
        self._packed: list[bytes] | None = None

    def __len__(self) -> int:
        return self._count

    def pack(self) -> None:
        r = get_redis()
        with translate_errors():
            conn = r.connection_pool.get_connection()
            try:
                self._packed = conn.pack_commands(self._commands)
                self._commands = []  # the bytes are all that is sent (a retry re-sends them)
            finally:
                r.connection_pool.release(conn)

    def send(self) -> list[list[str]]:
        if not self._count:
            return []
        if self._packed is None:
            self.pack()
        r = get_redis()
        with translate_errors():
            try:
                return self._send(r)
            except (RedisConnectionError, NoScriptError):
                # A stale pooled connection, or a server that lost its script cache (a
                # restart): send again. The scripts re-check everything, so a run the
                # first try admitted comes back GONE, never twice on a queue.
                r.script_load(self._source)
                return self._send(r)

    def _send(self, r: Any) -> list[list[str]]:
        assert self._packed is not None
        pool = r.connection_pool
        conn = pool.get_connection()
        replies: list[Any] = []
        try:
            conn.send_packed_command(self._packed)
            for _ in range(self._count):
                try:
                    replies.append(conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return [[str(x) for x in out] for out in replies]


def prepare_admit(entries: Sequence[Admission], now: float) -> PreparedAdmit:
    """The admission script calls for ``entries`` at time ``now``, not yet sent."""
    sha = _admit_script().sha  # loaded on NOSCRIPT by ``send``
    due, admitted, overlap = (
        keys.scheduled_due(),
        keys.scheduled_admitted(),
        keys.deployment_overlap(),
    )
    sprefix, rprefix = keys.flow_run_state_index_prefix(), keys.flow_run_key_prefix()
    templates: dict[tuple[str, str], _JobTemplate] = {}
    commands: list[tuple[Any, ...]] = []
    for e in entries:
        template = templates.get((e.pool, e.queue))
        if template is None:
            template = templates[(e.pool, e.queue)] = _JobTemplate(e.pool, e.queue)
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
        args += [template.shared, *template.per_run(e.run_id)]
        commands.append(("EVALSHA", sha, len(script_keys), *script_keys, *args))
    return PreparedAdmit(commands, sha, _ADMIT)


_scripts: dict[int, Script] = {}


def _admit_script() -> Script:
    r = get_redis()
    script = _scripts.get(id(r))
    if script is None:
        script = _scripts[id(r)] = r.register_script(_ADMIT)
    return script
