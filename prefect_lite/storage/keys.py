"""Every Redis key and queue name, in one place.

No other module builds a key string (a test checks). ``P`` is the configured prefix
(``PREFECT_LITE_REDIS_PREFIX``, default ``pl``).

Schema
======
==================================  =======  ====================================================
key                                 type     contents
==================================  =======  ====================================================
P:fr:{id}                           hash     flow run: rec (JSON record), state (JSON), type,
                                             ver (state version), lease, run_count, start, end,
                                             slots (JSON list of slot keys held),
                                             adm (run_count when admitted to a pool queue),
                                             seen (when a scheduler deferred it on purpose)
P:fr:{id}:hist                      list     state history, JSON states, oldest first
P:fr:{id}:logs                      list     log records (JSON), in order
P:fr:{id}:input                     hash     run input key -> JSON value (pause/send_input)
P:fr:idx:all                        zset     flow run ids by expected start time
P:fr:idx:state:{TYPE}               zset     flow run ids in a state type, by expected start
P:fr:idx:flow:{flow_id}             zset     flow run ids of a flow
P:fr:idx:dep:{deployment_id}        zset     flow run ids of a deployment
P:fr:idem:{scope}:{key}             string   idempotency key -> flow run id
P:tr:{id}                           hash     task run (same fields as a flow run hash)
P:tr:{id}:hist                      list     task run state history
P:tr:idx:fr:{flow_run_id}           zset     task run ids of a flow run, by start
P:tr:idx:state:{TYPE}               zset     task run ids in a state type
P:{kind}:rec:{name}                 string   named record (JSON): flow, deployment, pool,
                                             queue, worker, variable, block (the ``rec``
                                             segment keeps a record named "idx" or
                                             "alias:x" off the index and alias keys)
P:{kind}:idx                        zset     names of a kind (score 0: lexicographic)
P:{kind}:alias:{alias}              string   secondary lookup, e.g. id -> name
P:sched:due                         zset     scheduled flow run ids by scheduled time
P:sched:plan                        zset     deployment ids by next planning time
P:sched:planned                     hash     deployment id -> JSON plan state (fingerprint,
                                             planned-through time per schedule)
P:sched:admitted                    zset     admitted, not yet claimed run ids by sched. time
P:sched:overlap                     hash     deployment id -> overlap policy (non-default)
P:ready:{pool}:{queue}              list     run ids admitted to a pool's queue, oldest first
P:lease                             zset     running flow run ids by lease expiry
P:lock:{name}                       string   short lock with owner token and TTL
==================================  =======  ====================================================
"""

from __future__ import annotations

from prefect_lite.settings import get_settings


def prefix() -> str:
    return get_settings().redis_prefix


# -- flow runs
def flow_run(run_id: str) -> str:
    return f"{prefix()}:fr:{run_id}"


def flow_run_history(run_id: str) -> str:
    return f"{prefix()}:fr:{run_id}:hist"


def flow_run_logs(run_id: str) -> str:
    return f"{prefix()}:fr:{run_id}:logs"


def flow_run_input(run_id: str) -> str:
    return f"{prefix()}:fr:{run_id}:input"


def flow_run_index_all() -> str:
    return f"{prefix()}:fr:idx:all"


def flow_run_state_index_prefix() -> str:
    """Prefix to which the Lua script appends a state type."""
    return f"{prefix()}:fr:idx:state:"


def flow_run_index_state(state_type: str) -> str:
    return flow_run_state_index_prefix() + state_type


def flow_run_index_flow(flow_id: str) -> str:
    return f"{prefix()}:fr:idx:flow:{flow_id}"


def flow_run_index_deployment(deployment_id: str) -> str:
    return f"{prefix()}:fr:idx:dep:{deployment_id}"


def flow_run_idempotency(scope: str, key: str) -> str:
    return f"{prefix()}:fr:idem:{scope}:{key}"


# -- task runs
def task_run(run_id: str) -> str:
    return f"{prefix()}:tr:{run_id}"


def task_run_history(run_id: str) -> str:
    return f"{prefix()}:tr:{run_id}:hist"


def task_run_index_flow_run(flow_run_id: str) -> str:
    return f"{prefix()}:tr:idx:fr:{flow_run_id}"


def task_run_state_index_prefix() -> str:
    return f"{prefix()}:tr:idx:state:"


# -- orchestration
def scheduled_due() -> str:
    return f"{prefix()}:sched:due"


def plan_index() -> str:
    """Deployment ids by the time they next need planning (idle ones sit far ahead)."""
    return f"{prefix()}:sched:plan"


def plan_state() -> str:
    return f"{prefix()}:sched:planned"


def scheduled_admitted() -> str:
    """Runs handed to a pool queue and not yet claimed (for late marking, overlap)."""
    return f"{prefix()}:sched:admitted"


def deployment_overlap() -> str:
    return f"{prefix()}:sched:overlap"


def pool_queue_ready(pool: str, queue: str) -> str:
    """Runs admitted to one work queue of a pool, oldest first (the admission seam)."""
    return f"{prefix()}:ready:{pool}:{queue}"


def flow_run_key_prefix() -> str:
    """``flow_run(id)`` without the id, for Lua scripts that look at other runs."""
    return f"{prefix()}:fr:"


def leases() -> str:
    return f"{prefix()}:lease"


def lock(name: str) -> str:
    return f"{prefix()}:lock:{name}"


def history_of(record_key: str) -> str:
    """History list of a run hash key (flow or task run)."""
    return f"{record_key}:hist"


# -- named records (flows, deployments, pools, queues, workers, variables, blocks)
def record(kind: str, name: str) -> str:
    return f"{prefix()}:{kind}:rec:{name}"


def record_index(kind: str) -> str:
    return f"{prefix()}:{kind}:idx"


def record_alias(kind: str, alias: str) -> str:
    """Secondary lookup (e.g. deployment id -> name)."""
    return f"{prefix()}:{kind}:alias:{alias}"
