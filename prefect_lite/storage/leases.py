"""Flow run leases: renewed by the holder's heartbeat, taken over by the reaper.

A claim (``delivery.claim``) or a runner's PENDING proposal gives a run a lease token
(hash field ``lease``) and an expiry (``keys.leases()``); ``propose_state`` extends it with
each proposal of the holder and drops it when the run ends, is rescheduled or suspended.
Here: the heartbeat's renewal (which also answers each run's state type, the slow path of
cancellation), the reaper's view of expired leases, and its atomic take-over of one.

A token names its holder: ``{owner}.{random}``, where the owner is the process whose
connections carry ``keys.owner_client_name(owner)``; so the reaper can ask Redis whether
the holder of a lease still has a connection (``liveness.connected_owners``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from redis.commands.core import Script

from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis, translate_errors

# KEYS: lease zset.  ARGV: expiry, run key prefix, then run id / lease token pairs.
# Extends each lease that is still the caller's and answers the run's state type; FREE
# when the run holds no lease any more (it ended, or went back to SCHEDULED), LOST when
# another holder has it (the reaper took it over).
_RENEW = """
local out = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', ARGV[2] .. id, 'lease', 'type')
  if f[1] == token then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], id)
    out[#out + 1] = f[2]
  elseif not f[1] then
    out[#out + 1] = 'FREE'
  else
    out[#out + 1] = 'LOST'
  end
end
return out
"""

_scripts: dict[tuple[int, str], Script] = {}


def _script(name: str, source: str) -> Script:
    r = get_redis()
    key = (id(r), name)
    script = _scripts.get(key)
    if script is None:
        script = _scripts[key] = r.register_script(source)
    return script


def renew_leases(leases: Sequence[tuple[str, str]], expiry: float) -> list[str]:
    """Extend each ``(run id, lease token)`` still held; each run's state type, or FREE
    (no lease any more) or LOST (someone else holds it)."""
    if not leases:
        return []
    args: list[Any] = [repr(expiry), keys.flow_run_key_prefix()]
    for run_id, token in leases:
        args += [run_id, token]
    with translate_errors():
        return [str(x) for x in _script("renew", _RENEW)(keys=[keys.leases()], args=args)]


def new_token(owner: str | None) -> str:
    """A fresh lease token, naming its holder when it has one."""
    random = uuid.uuid4().hex
    return f"{owner}.{random}" if owner else random


def owner_of(token: str | None) -> str | None:
    """The holder named in a lease token (None: an anonymous or reaper token)."""
    if not token or "." not in token:
        return None
    return token.partition(".")[0] or None


def expired_leases(now: float, limit: int) -> list[tuple[str, float]]:
    """``(run id, expiry)`` of leases that expired by ``now``, oldest first."""
    with translate_errors():
        rows: Any = get_redis().zrangebyscore(
            keys.leases(), "-inf", repr(now), start=0, num=limit, withscores=True
        )
    return [(str(member), float(score)) for member, score in rows]


# KEYS: lease zset.  ARGV: run key prefix, owner id + ".".
# The leased runs whose token names this owner (run only when an owner went away).
_OWNED = """
local out = {}
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  local token = redis.call('HGET', ARGV[1] .. id, 'lease')
  if token and string.sub(token, 1, #ARGV[2]) == ARGV[2] then out[#out + 1] = id end
end
return out
"""


def leases_of_owner(owner: str) -> list[str]:
    """Run ids whose lease the owner holds."""
    with translate_errors():
        out = _script("owned", _OWNED)(
            keys=[keys.leases()], args=[keys.flow_run_key_prefix(), f"{owner}."]
        )
    return [str(x) for x in out]


def forget_leases(run_ids: Sequence[str]) -> None:
    if run_ids:
        with translate_errors():
            get_redis().zrem(keys.leases(), *run_ids)


def requeue_unstarted(run_id: str) -> None:
    """Let a run that was claimed but never started be admitted again (drops ``adm``)."""
    with translate_errors():
        get_redis().hdel(keys.flow_run(run_id), "adm")


def holder_and_type(run_id: str) -> tuple[str | None, str]:
    """The run's lease token (None: not leased) and its state type."""
    with translate_errors():
        token, state_type = get_redis().hmget(keys.flow_run(run_id), ["lease", "type"])
    return (str(token) if token is not None else None), str(state_type or "")


def lease_of(run_id: str) -> str | None:
    """The lease token the run is held under (None: not leased)."""
    with translate_errors():
        value = get_redis().hget(keys.flow_run(run_id), "lease")
    return str(value) if value is not None else None


# KEYS: lease zset, run hash.  ARGV: run id, now, new token.
# Takes over an expired lease: only if its expiry has passed, the run gets the reaper's
# token (a late heartbeat or proposal of the old holder is then stale). Answers
# {version, type} or {} when the lease was renewed or released meanwhile.
_TAKE = """
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp or tonumber(exp) > tonumber(ARGV[2]) then return {} end
local f = redis.call('HMGET', KEYS[2], 'lease', 'ver', 'type')
if not f[1] then redis.call('ZREM', KEYS[1], ARGV[1]) return {} end
redis.call('HSET', KEYS[2], 'lease', ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return {f[2] or '0', f[3] or ''}
"""


def take_expired_lease(run_id: str, now: float, token: str) -> tuple[int, str] | None:
    """``(version, state type)`` if the run's lease had expired and is now ``token``'s."""
    with translate_errors():
        out = _script("take", _TAKE)(
            keys=[keys.leases(), keys.flow_run(run_id)], args=[run_id, repr(now), token]
        )
    return (int(out[0]), str(out[1])) if out else None


# KEYS: lease zset, run hash.  ARGV: run id, holder's token, new token.
# Takes a lease over from a holder known to be gone, expired or not: only while that
# holder still has it. Answers {version, type}, or {} when the lease changed meanwhile.
_TAKE_FROM = """
local f = redis.call('HMGET', KEYS[2], 'lease', 'ver', 'type')
if f[1] ~= ARGV[2] then return {} end
redis.call('HSET', KEYS[2], 'lease', ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return {f[2] or '0', f[3] or ''}
"""


def take_lease_from(run_id: str, holder: str, token: str) -> tuple[int, str] | None:
    """``(version, state type)`` if the run was still ``holder``'s and is now ``token``'s."""
    with translate_errors():
        out = _script("take_from", _TAKE_FROM)(
            keys=[keys.leases(), keys.flow_run(run_id)], args=[run_id, holder, token]
        )
    return (int(out[0]), str(out[1])) if out else None
