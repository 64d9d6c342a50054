"""Lua scripts for the atomic steps: propose a state, create a run if absent.

``propose_state`` checks the transition table (generated from ``states.TRANSITIONS``),
the version and the lease token, writes the new state, appends to the history, moves
the run between state indexes, the due set and the lease set, and releases pool slots on
leaving a slot-holding state - all in one round trip. A flow run's new version is
published on ``keys.flow_run_changes`` (waiters block on it instead of polling).

Run hash fields: id, rec, state, type, name, ver, lease, run_count, start, end, score, slots.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

from prefect_lite.states import transition_table_lua

# ARGV layout shared by both scripts, after the script-specific head:
#   state_json, to_type, to_name, now_ts, state_index_prefix ('' = none), due_key ('' = none),
#   scheduled_ts, lease_key ('' = none), lease_expiry, new_lease ('' keep, '-' clear),
#   admit_key ('' = none: list to notify when slots are released),
#   cancel_channel ('' = none: where to PUBLISH the id of a run entering CANCELLING)
_APPLY = r"""
local T = %(table)s
local TERMINAL = {COMPLETED=true, FAILED=true, CANCELLED=true, CRASHED=true}

local function apply_state(key, hist, run_id, cur_type, ver, a, o)
  -- a: ARGV; o: offset of the shared block
  local state_json, to_type, name, now = a[o], a[o+1], a[o+2], a[o+3]
  local idx, due, sched_ts = a[o+4], a[o+5], a[o+6]
  local lease_key, lease_exp, new_lease, admit = a[o+7], a[o+8], a[o+9], a[o+10]
  local cancel_chan = a[o+11] or ''
  ver = ver + 1
  redis.call('HSET', key, 'state', state_json, 'type', to_type, 'name', name, 'ver', ver)
  redis.call('RPUSH', hist, state_json)
  if idx ~= '' then
    local score = redis.call('HGET', key, 'score') or now
    if cur_type ~= '' then redis.call('ZREM', idx .. cur_type, run_id) end
    redis.call('ZADD', idx .. to_type, score, run_id)
  end
  if to_type == 'RUNNING' then
    redis.call('HINCRBY', key, 'run_count', 1)
    if not redis.call('HGET', key, 'start') then redis.call('HSET', key, 'start', now) end
  end
  local final = TERMINAL[to_type]
  if final then redis.call('HSET', key, 'end', now) end
  if due ~= '' then
    if to_type == 'SCHEDULED' then redis.call('ZADD', due, sched_ts, run_id)
    else redis.call('ZREM', due, run_id) end
  end
  if new_lease == '-' then redis.call('HDEL', key, 'lease')
  elseif new_lease ~= '' then redis.call('HSET', key, 'lease', new_lease) end
  -- SCHEDULED -> SCHEDULED (Late, a new time) keeps a queued run's slots: it is still queued.
  local releasing = final or (to_type == 'SCHEDULED' and cur_type ~= 'SCHEDULED')
    or name == 'Suspended'
  if lease_key ~= '' then
    if releasing then
      redis.call('ZREM', lease_key, run_id)
      redis.call('HDEL', key, 'lease')
    elseif lease_exp ~= '' then
      redis.call('ZADD', lease_key, lease_exp, run_id)
    end
  end
  if releasing then
    local slots = redis.call('HGET', key, 'slots')
    if slots and slots ~= '' then
      for slot in string.gmatch(slots, '%%S+') do redis.call('ZREM', slot, run_id) end
      redis.call('HDEL', key, 'slots')
      if admit ~= '' then redis.call('RPUSH', admit, run_id) end
    end
  end
  if to_type == 'CANCELLING' and cancel_chan ~= '' then
    redis.call('PUBLISH', cancel_chan, run_id)
  end
  -- Flow runs (the ones indexed by state): wake whoever waits on this run's changes.
  if idx ~= '' then redis.call('PUBLISH', key, ver) end
  return ver
end
"""

# Propose and create as Lua functions over a shared block ``a`` at offset ``o``, used by
# the single-run entry points below and by the task run batch script.
_STEPS = r"""
local function propose_one(key, hist, expected, lease_tok, force, a, o)
  local cur = redis.call('HMGET', key, 'id', 'type', 'ver', 'lease', 'state')
  local run_id, cur_type, lease = cur[1], cur[2] or '', cur[4]
  local ver, cur_state = tonumber(cur[3] or '0'), cur[5] or ''
  if not run_id then return {'NOTFOUND', '0', ''} end
  if expected ~= '' and tonumber(expected) ~= ver then
    return {'STALE', tostring(ver), cur_state}
  end
  if lease_tok ~= '' and lease and lease ~= lease_tok then
    return {'STALE', tostring(ver), cur_state}
  end
  local status = 'ACCEPT'
  if force ~= '1' then
    local d = T[cur_type .. '>' .. a[o+1]]
    if d == nil or d == 'R' then return {'REJECT', tostring(ver), cur_state} end
    if d ~= 'A' then
      local _, _, ttype, tname, tmsg = string.find(d, '^T|([^|]*)|([^|]*)|(.*)$')
      local s = cjson.decode(a[o])
      s['type'] = ttype
      s['name'] = tname
      s['message'] = tmsg
      a[o] = cjson.encode(s)
      a[o+1] = ttype
      a[o+2] = tname
      status = 'TURN'
    end
  end
  ver = apply_state(key, hist, run_id, cur_type, ver, a, o)
  return {status, tostring(ver), a[o]}
end

local function create_one(key, hist, idem, indexes, run_id, rec, score, a, o)
  if idem ~= '' then
    local existing = redis.call('GET', idem)
    if existing then return {'EXISTS', existing} end
  end
  if redis.call('EXISTS', key) == 1 then return {'EXISTS', run_id} end
  if idem ~= '' then redis.call('SET', idem, run_id) end
  redis.call('HSET', key, 'id', run_id, 'rec', rec, 'score', score, 'ver', 0, 'run_count', 0)
  for _, index in ipairs(indexes) do redis.call('ZADD', index, score, run_id) end
  apply_state(key, hist, run_id, '', 0, a, o)
  return {'CREATED', run_id}
end
"""

# KEYS: run hash, history list.  ARGV: expected_ver, lease_token, force, <shared block>
_PROPOSE = r"""
return propose_one(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV, 4)
"""

# KEYS: run hash, history list, idempotency key ('' ok), then index zsets to add the id to.
# ARGV: run_id, record_json, score, <shared block>
_CREATE = r"""
local indexes = {}
for i = 4, #KEYS do indexes[#indexes + 1] = KEYS[i] end
return create_one(KEYS[1], KEYS[2], KEYS[3], indexes, ARGV[1], ARGV[2], ARGV[3], ARGV, 4)
"""

# Task run changes in one call (see storage.task_batch). ARGV[1]: JSON array of groups,
# each the changes of ONE task run in order (groups of different runs are independent, so
# their relative order does not matter). ARGV[2..4]: run key head, history suffix,
# flow-run index head (keys.task_run_key_parts). State and record JSONs are the further
# ARGV entries, named by their index:
#   ["c", run_id, [state_arg...], [type...], [name...], [ts...], [force...],
#    flow_run_id or '', record_arg, score]   -- a run created in this batch, then proposals
#   ["p", run_id, [state_arg...], [type...], [name...], [ts...], [force...]]
# Answers one status per change, group after group.
# A new run whose whole chain the table accepts is written with a handful of commands
# (one HSET, one RPUSH of all states); anything else goes through create_one/propose_one.
_TASK_BATCH = r"""
local ops = cjson.decode(ARGV[1])
local head, hist_suffix, index_head = ARGV[2], ARGV[3], ARGV[4]
local out = {}
local function shared(op, i)
  return {ARGV[op[3][i]], op[4][i], op[5][i], op[6][i], '', '', '0', '', '', '', '', ''}
end
local function fast_chain(key, types, forces)
  if T['>' .. types[1]] ~= 'A' then return false end
  for i = 2, #types do
    if forces[i] ~= '1' and T[types[i - 1] .. '>' .. types[i]] ~= 'A' then return false end
  end
  return redis.call('EXISTS', key) == 0
end
for _, op in ipairs(ops) do
  local run_id, args, types, stamps = op[2], op[3], op[4], op[6]
  local key = head .. run_id
  local hist = key .. hist_suffix
  local n = #args
  local indexes = {}
  if op[1] == 'c' and op[8] ~= '' then indexes[1] = index_head .. op[8] end
  if op[1] == 'c' and fast_chain(key, types, op[7]) then
    local runs, start = 0, nil
    local states = {}
    for i = 1, n do
      states[i] = ARGV[args[i]]
      if types[i] == 'RUNNING' then
        runs = runs + 1
        if start == nil then start = stamps[i] end
      end
    end
    local f = {'id', run_id, 'rec', ARGV[op[9]], 'score', op[10], 'ver', n, 'run_count', runs,
               'state', states[n], 'type', types[n], 'name', op[5][n]}
    if start then f[#f + 1] = 'start'; f[#f + 1] = start end
    if TERMINAL[types[n]] then f[#f + 1] = 'end'; f[#f + 1] = stamps[n] end
    redis.call('HSET', key, unpack(f))
    redis.call('RPUSH', hist, unpack(states))
    for _, index in ipairs(indexes) do redis.call('ZADD', index, op[10], run_id) end
    out[#out + 1] = 'CREATED'
    for _ = 2, n do out[#out + 1] = 'ACCEPT' end
  else
    local first = 1
    if op[1] == 'c' then
      local made = create_one(key, hist, '', indexes, run_id, ARGV[op[9]], op[10],
                              shared(op, 1), 1)
      out[#out + 1] = made[1]
      first = 2
    end
    for i = first, n do
      out[#out + 1] = propose_one(key, hist, '', '', op[7][i], shared(op, i), 1)[1]
    end
  end
end
return out
"""


@cache
def apply_source() -> str:
    """The transition table ``T`` and ``apply_state``, for scripts that change a run's
    state as one step of something larger (e.g. a worker's claim in ``storage.delivery``)."""
    return _APPLY % {"table": transition_table_lua()}


@cache
def propose_source() -> str:
    return apply_source() + _STEPS + _PROPOSE


@cache
def create_source() -> str:
    return apply_source() + _STEPS + _CREATE


@cache
def task_batch_source() -> str:
    return apply_source() + _STEPS + _TASK_BATCH


@cache
def sha(name: str) -> str:
    """SHA1 of a script's source, as EVALSHA wants it."""
    return hashlib.sha1(_source(name).encode()).hexdigest()


def _source(name: str) -> str:
    if name == "create":
        return create_source()
    if name == "propose":
        return propose_source()
    if name == "task_batch":
        return task_batch_source()
    if name == "run_rows":
        return run_rows_source()
    if name == "run_groups":
        return run_groups_source()
    return claim_slots_source()


def load_all(r: Any) -> None:
    """Load every script into the server's script cache (after a restart or flush)."""
    for name in ("create", "propose", "task_batch", "claim", "run_rows", "run_groups"):
        r.script_load(_source(name))


# KEYS: run hash, then slot sets (zsets of run ids holding a slot).
# ARGV: run_id, now_ts, then one limit per slot set ('' = unlimited).
# Takes a slot in every set or in none: answers {1} or {0, index of the full set}.
# The propose_state script releases them when the run leaves a slot-holding state.
_CLAIM_SLOTS = r"""
local run_id, now = ARGV[1], ARGV[2]
for i = 2, #KEYS do
  local limit = ARGV[i + 1]
  if limit ~= '' and redis.call('ZSCORE', KEYS[i], run_id) == false then
    if redis.call('ZCARD', KEYS[i]) >= tonumber(limit) then return {0, i - 1} end
  end
end
local held = {}
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], now, run_id)
  held[#held + 1] = KEYS[i]
end
redis.call('HSET', KEYS[1], 'slots', table.concat(held, ' '))
return {1}
"""


def claim_slots_source() -> str:
    return _CLAIM_SLOTS


# Read-only, for the web UI's timelines. KEYS: a run index zset. ARGV: the run hash key
# head (``keys.task_run("")``), the most ids to read. Answers, per id in index order:
# id, name, task_key (both as JSON string bodies, cut from the record without decoding
# it), type, state name, start, end, run_count (flattened): one round trip and a few
# dozen bytes per run, for thousands of runs.
_RUN_ROWS = r"""
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local out = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ARGV[1] .. id, 'rec', 'type', 'name', 'start', 'end', 'run_count')
  local rec = f[1] or ''
  out[#out + 1] = id
  out[#out + 1] = string.match(rec, '"name":"(.-[^\\])"') or ''
  out[#out + 1] = string.match(rec, '"task_key":"(.-[^\\])"') or ''
  for i = 2, 6 do out[#out + 1] = f[i] or '' end
end
return out
"""


def run_rows_source() -> str:
    return _RUN_ROWS


# Read-only, for the web UI's timeline of a run with many task runs: the same reads as
# _RUN_ROWS, summed up per task key inside Redis so that only one short row per task
# travels. ARGV: run hash key head, the most ids to read, now (the end of unfinished
# runs). Answers, per task key in order of first appearance: task_key (a JSON string
# body), count, first start ('' if none started), last end, 'TYPE=n TYPE=n'.
_RUN_GROUPS = r"""
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local now = tonumber(ARGV[3])
local groups, order = {}, {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ARGV[1] .. id, 'rec', 'type', 'start', 'end')
  local key = string.match(f[1] or '', '"task_key":"(.-[^\\])"') or ''
  local g = groups[key]
  if not g then
    g = {n = 0, types = {}, first = false, last = false}
    groups[key] = g
    order[#order + 1] = key
  end
  g.n = g.n + 1
  local t = f[2] or ''
  g.types[t] = (g.types[t] or 0) + 1
  local start = tonumber(f[3] or '')
  if start then
    local stop = tonumber(f[4] or '') or now
    if not g.first or start < g.first then g.first = start end
    if not g.last or stop > g.last then g.last = stop end
  end
end
local out = {}
for _, key in ipairs(order) do
  local g = groups[key]
  local parts = {}
  for t, n in pairs(g.types) do parts[#parts + 1] = t .. '=' .. n end
  table.sort(parts)
  out[#out + 1] = key
  out[#out + 1] = tostring(g.n)
  out[#out + 1] = g.first and string.format('%.6f', g.first) or ''
  out[#out + 1] = g.last and string.format('%.6f', g.last) or ''
  out[#out + 1] = table.concat(parts, ' ')
end
return out
"""


def run_groups_source() -> str:
    return _RUN_GROUPS
