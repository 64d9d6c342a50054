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
P:fr:{id}                           pubsub   channel (same name as the hash; channels are
                                             their own namespace): the run's new state
                                             version, published by propose_state
P:fr:{id}:hist                      list     state history, JSON states, oldest first
P:fr:{id}:logs                      list     log records (JSON), in order; at most
                                             max_logs_per_run, then one marker record
P:fr:{id}:logs:dropped              string   how many log records were dropped (over the cap)
P:fr:{id}:input                     hash     run input key -> "{log entry id} {JSON RunInput}"
                                             (pause/resume answers, send_input messages)
P:fr:{id}:input:log                 stream   one entry (k = input key) per live input, in
                                             creation order; receivers XREAD BLOCK on it
P:fr:{id}:input:log                 pubsub   channel: an input key, published when one is
                                             stored (the server's async input waits)
P:fr:{id}:resume                    list     resume tokens: a paused process BLPOPs it
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
rq:queue:P.{pool}.{queue}           list     RQ queue of one work queue: admitted run ids (the RQ
                                             job ids), oldest first; ``pool_queue_ready``
rq:job:{run id}                     hash     the RQ job of an admitted run (JSON payload: the
                                             run id); deleted when a worker claims the run
P:slot:pool:{pool}                  zset     run ids holding a slot of the pool (by admission)
P:slot:queue:{pool}:{queue}         zset     run ids holding a slot of the work queue
P:slot:dep:{deployment_id}          zset     run ids holding a slot of the deployment
P:pool:wait:{pool}                  zset     due run ids a concurrency limit holds back
P:pool:bell:{pool}:{queue}          list     one token per admitted run: workers block on it
P:pool:hooks:{pool}                 list     crashed run ids whose on_crashed hooks must run
P:admit                             list     run ids whose slots were just released
P:chan:cancel                       pubsub   run ids that were just asked to cancel
P:fr:idx:parent:{flow_run_id}       zset     subflow run ids of a flow run
P:lease                             zset     running flow run ids by lease expiry
P-own-{owner}                       client   CLIENT SETNAME of a lease holder's connections
                                             (not a key): gone from CLIENT LIST = process gone
P:lock:{name}                       string   short lock with owner token and TTL
P:lock:txn:{key}                    string   transaction lock: holder token, TTL = timeout
P:result:{key}                      string   persisted result blob (RedisStorage), as the
                                             serializer wrote it (signed base64 pickle,
                                             see prefect_lite.signing, or JSON)
P:cache:{key}                       string   cache record (JSON CacheRecord): where a cached
                                             result is, its expiration; a task's key starts
                                             with its task key, a committed transaction's
                                             with ``txn:``. Expires a grace period after
                                             the record's own expiration
==================================  =======  ====================================================
"""

from __future__ import annotations

from prefect_lite.settings import get_settings


def prefix() -> str:
    return get_settings().redis_prefix


# -- flow runs
def flow_run(run_id: str) -> str:
    return f"{prefix()}:fr:{run_id}"


def flow_run_changes(run_id: str) -> str:
    """Pub/sub channel of a flow run's state changes (named like its hash)."""
    return flow_run(run_id)


def flow_run_history(run_id: str) -> str:
    return f"{prefix()}:fr:{run_id}:hist"


def flow_run_logs(run_id: str) -> str:
    return f"{prefix()}:fr:{run_id}:logs"


def flow_run_logs_dropped(run_id: str) -> str:
    """Count of a run's log records dropped once its log list was full."""
    return f"{flow_run_logs(run_id)}:dropped"


def flow_run_input(run_id: str) -> str:
    return f"{prefix()}:fr:{run_id}:input"


def flow_run_input_log(run_id: str) -> str:
    """Stream of a run's live input keys in creation order (receivers block on it)."""
    return f"{prefix()}:fr:{run_id}:input:log"


def flow_run_input_changes(run_id: str) -> str:
    """Pub/sub channel: keys of inputs just stored for the run (named like its input log)."""
    return flow_run_input_log(run_id)


def flow_run_resume(run_id: str) -> str:
    """Tokens pushed when a paused run is resumed; its process blocks on them."""
    return f"{prefix()}:fr:{run_id}:resume"


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


def task_run_key_parts() -> tuple[str, str, str]:
    """``(run key head, history suffix, flow-run index head)``: the task run batch script
    builds ``task_run(id)``, ``history_of(task_run(id))`` and ``task_run_index_flow_run(id)``
    from these, so a batch carries ids, not keys."""
    return task_run(""), history_of(""), task_run_index_flow_run("")


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


# RQ's own key names (``rq.Queue.redis_queue_namespace_prefix``, ``rq.Queue.redis_queues_keys``,
# ``rq.job.Job.redis_job_namespace_prefix``); storage.delivery checks they still match.
RQ_QUEUE_PREFIX = "rq:queue:"
RQ_QUEUES = "rq:queues"
RQ_JOB_PREFIX = "rq:job:"


def rq_queue_name(pool: str, queue: str) -> str:
    """The RQ queue of one work queue of a pool (pool and queue names hold no dots)."""
    return f"{prefix()}.{pool}.{queue}"


def pool_queue_ready(pool: str, queue: str) -> str:
    """Runs admitted to one work queue of a pool, oldest first: the RQ queue's list."""
    return RQ_QUEUE_PREFIX + rq_queue_name(pool, queue)


def rq_job(job_id: str) -> str:
    return RQ_JOB_PREFIX + job_id


def slot_pool(pool: str) -> str:
    return f"{prefix()}:slot:pool:{pool}"


def slot_queue(pool: str, queue: str) -> str:
    return f"{prefix()}:slot:queue:{pool}:{queue}"


def slot_deployment(deployment_id: str) -> str:
    return f"{prefix()}:slot:dep:{deployment_id}"


def pool_waiting(pool: str) -> str:
    """Due runs of a pool that a concurrency limit holds back, by scheduled time."""
    return f"{prefix()}:pool:wait:{pool}"


def queue_bell(pool: str, queue: str) -> str:
    """Wake-up tokens for workers blocked on a work queue."""
    return f"{prefix()}:pool:bell:{pool}:{queue}"


def pool_hooks(pool: str) -> str:
    """Crashed runs whose on_crashed hooks a worker of the pool must run."""
    return f"{prefix()}:pool:hooks:{pool}"


def admit_notify() -> str:
    """Run ids whose pool slots ``propose_state`` just released."""
    return f"{prefix()}:admit"


def cancel_channel() -> str:
    """Pub/sub channel: ids of runs just asked to cancel."""
    return f"{prefix()}:chan:cancel"


def flow_run_index_parent(flow_run_id: str) -> str:
    """Subflow runs of a flow run."""
    return f"{prefix()}:fr:idx:parent:{flow_run_id}"


def flow_run_key_prefix() -> str:
    """``flow_run(id)`` without the id, for Lua scripts that look at other runs."""
    return f"{prefix()}:fr:"


def leases() -> str:
    return f"{prefix()}:lease"


def owner_client_name(owner: str) -> str:
    """The connection name of a lease holder (``CLIENT SETNAME``); not a key."""
    return f"{prefix()}-own-{owner}"


def owner_client_prefix() -> str:
    return f"{prefix()}-own-"


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


# -- results, cache records and transaction locks
def result_blob(key: str) -> str:
    return f"{prefix()}:result:{key}"


def cache_record(key: str) -> str:
    return f"{prefix()}:cache:{key}"


def transaction_lock(key: str) -> str:
    return lock(f"txn:{key}")
