"""Pool admission: ``submit(flow_run_ids)`` hands due runs to their work queue's RQ queue.

The scheduler's promote step calls ``submit`` with runs whose scheduled time has come; so
does whatever creates a run due now (to start it without waiting for a tick) and
``admit_waiting`` when slots are released. For each run, atomically (one Lua script per
run in ``storage.delivery``, safe with any number of callers):

1. it must still be in the due set and in a deliverable state (SCHEDULED named
   ``Scheduled``, ``Late`` or ``AwaitingRetry``) and not admitted since it last ran (the
   run hash's ``adm`` field holds ``run_count`` at admission, so a run is handed out once
   per attempt however often it re-enters the due set, e.g. when marked Late);
2. the deployment's **overlap policy** decides: ``allow`` admits; with an active run
   (PENDING, RUNNING, CANCELLING, PAUSED, or admitted and not yet claimed) ``skip``
   cancels this run, ``buffer_one`` keeps the earliest waiting run due and cancels later
   ones, ``cancel_other`` admits this run and asks the active ones to cancel;
3. **concurrency**: a slot in each of the pool's, the work queue's and the deployment's
   slot sets, all or none. A run that does not fit stays due and waits in the pool's
   waiting set (a deployment with ``collision_strategy="CANCEL_NEW"`` cancels it instead);
4. admitted: the run leaves the due set, its RQ job is written and its id pushed on the RQ
   queue of ``(pool, queue)`` (queue ``default`` when the run names none), and it is
   recorded in ``keys.scheduled_admitted()`` until a worker claims it.

``propose_state`` releases the slots when the run ends, is rescheduled or suspended, and
pushes the run id on ``keys.admit_notify()``; ``admit_released`` (a worker's admitter, the
scheduler's reaper hook) then admits the pool's waiting runs at once. Runs without a work
pool are held: they stay due for whoever runs them (a runner serving its deployments). A
paused pool or queue holds its runs too; resuming it admits them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from prefect_lite import _time
from prefect_lite.schemas import Deployment, WorkPool, WorkQueue
from prefect_lite.states import Cancelled, Cancelling
from prefect_lite.storage import delivery, deployments, keys, pools, runs, scheduling

logger = logging.getLogger("prefect_lite.orchestration.admission")

DEFAULT_QUEUE = "default"
_DELIVERABLE = ("Scheduled", "Late", "AwaitingRetry")
WAITING_BUDGET = 64  # waiting runs tried per release of a pool's slots

# A run the slot pre-check held back: (id, waiting-set score, (queue, its slot sets)).
_HeldBack = tuple[str, float, tuple[str, list[tuple[str, "int | None"]]]]


@dataclass
class SubmitResult:
    """What happened to each submitted run, by outcome."""

    admitted: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # stays due (limits, pause, buffer_one)
    skipped: list[str] = field(default_factory=list)  # cancelled (overlap, CANCEL_NEW)
    held: list[str] = field(default_factory=list)  # not deliverable by this seam
    gone: list[str] = field(default_factory=list)  # no longer due, or admitted already
    cancelling: list[str] = field(default_factory=list)  # active runs asked to cancel


def ready_key(work_pool_name: str, work_queue_name: str | None) -> str:
    """The RQ queue list runs of this pool queue are pushed on."""
    return keys.pool_queue_ready(work_pool_name, work_queue_name or DEFAULT_QUEUE)


class _Limits:
    """Pool, queue and deployment records of one submit call, and slot availability as
    read at its start (a cheap pre-check; the admission script decides)."""

    def __init__(self, facts: list[scheduling.RunFacts]) -> None:
        records = [f.record for f in facts]
        names = (str(r["work_pool_name"]) for r in records)
        self.pools: dict[str, WorkPool] = pools.get_pools(names)
        pairs = {(str(r["work_pool_name"]), _queue_of(r)) for r in records}
        self.queues: dict[tuple[str, str], WorkQueue] = pools.get_queues(pairs)
        self._create_missing_queues(pairs)
        dep_ids = sorted({str(r["deployment_id"]) for r in records if r.get("deployment_id")})
        self.deployments: dict[str, Deployment] = deployments.get_many_by_id(dep_ids)
        self.free: dict[str, int] = {}

    @classmethod
    def current(cls, pool: str, pairs: set[tuple[str, str]]) -> _Limits:
        """Fresh records of a pool and some of its queues (no deployments, no usage)."""
        limits = cls([])
        limits.pools, limits.queues = pools.get_pools([pool]), pools.get_queues(pairs)
        return limits

    def _create_missing_queues(self, pairs: set[tuple[str, str]]) -> None:
        """A run naming a queue its (registered) pool lacks gets that queue, like Prefect."""
        for pool_name, queue_name in sorted(pairs - set(self.queues)):
            if pool_name not in self.pools:
                continue
            existing = pools.list_queues(pool_name)
            queue = WorkQueue(
                name=queue_name,
                work_pool_name=pool_name,
                priority=max((q.priority for q in existing), default=0) + 1,
            )
            pools.create_queue(queue)
            self.queues[(pool_name, queue_name)] = pools.get_queue(pool_name, queue_name) or queue

    def paused(self, pool: str, queue: str) -> bool:
        p, q = self.pools.get(pool), self.queues.get((pool, queue))
        return bool((p and p.paused) or (q and q.paused))

    def slots(self, pool: str, queue: str, dep_id: str | None) -> list[tuple[str, int | None]]:
        p, q = self.pools.get(pool), self.queues.get((pool, queue))
        out = [
            (keys.slot_pool(pool), p.concurrency_limit if p else None),
            (keys.slot_queue(pool, queue), q.concurrency_limit if q else None),
        ]
        if dep_id:
            d = self.deployments.get(dep_id)
            out.append((keys.slot_deployment(dep_id), d.concurrency_limit if d else None))
        return out

    def slim(self) -> None:
        """Keep only what tallying outcomes needs (a prepared submit may wait a while)."""
        self.deployments = {
            k: d for k, d in self.deployments.items() if d.collision_strategy == "CANCEL_NEW"
        }
        self.free = {}

    def cancels_new(self, dep_id: str | None) -> bool:
        d = self.deployments.get(dep_id or "")
        return d is not None and d.collision_strategy == "CANCEL_NEW"

    def read_usage(self, slot_sets: Iterable[tuple[str, int | None]]) -> None:
        limits = {key: limit for key, limit in slot_sets if limit is not None}
        limited = sorted(limits)
        counts = pools.slot_holders(limited)
        self.free = {key: limits[key] - n for key, n in zip(limited, counts, strict=True)}

    def fits(self, slots: list[tuple[str, int | None]]) -> bool:
        return all(self.free.get(key, 1) > 0 for key, limit in slots if limit is not None)

    def take(self, slots: list[tuple[str, int | None]]) -> None:
        for key, limit in slots:
            if limit is not None and key in self.free:
                self.free[key] -= 1


def _queue_of(record: dict[str, object]) -> str:
    return str(record.get("work_queue_name") or DEFAULT_QUEUE)


def submit(flow_run_ids: Iterable[str], now: datetime | None = None) -> SubmitResult:
    """Admit each due run to its pool queue (see the module docstring); never raises for
    a run that changed meanwhile - it is reported as ``gone``."""
    return prepare(flow_run_ids, now).execute()


class PreparedSubmit:
    """A ``submit`` whose reads and script packing are done; ``execute`` runs the scripts.

    The scheduler prepares the runs falling due at an instant shortly before it and
    executes at that instant, so promotion is not delayed by preparing. The scripts check
    again when they run (due, state, overlap, slots), so nothing read early is trusted.
    """

    def __init__(self, result: SubmitResult, limits: _Limits | None = None,
                 entries: list[delivery.Admission] | None = None,
                 held_back: dict[str, list[_HeldBack]] | None = None,
                 at: float = 0.0, recheck: bool = True) -> None:  # fmt: skip
        self.result, self._limits, self._entries = result, limits, entries or []
        self._held_back, self._recheck = held_back or {}, recheck
        self._scripts = delivery.prepare_admit(self._entries, at)
        self._scripts.pack()
        if limits is not None:
            limits.slim()

    def __len__(self) -> int:
        return len(self._entries)

    def execute(self) -> SubmitResult:
        """Run the scripts now (again, if called again: each run is admitted once)."""
        result = SubmitResult(**{name: list(ids) for name, ids in vars(self.result).items()})
        if self._limits is None:
            return result
        outcomes = self._scripts.send()
        for pool, waiting in self._held_back.items():
            delivery.mark_waiting(pool, [(run_id, score) for run_id, score, _ in waiting])
        if self._recheck:
            _recheck_held_back(self._held_back)
        cancel_new = _tally(self._entries, outcomes, self._limits, result)
        _cancel(result.skipped, "Skipped: the deployment already has an active run "
                "(overlap policy).")  # fmt: skip
        _cancel(cancel_new, "Cancelled: the deployment is at its concurrency limit "
                "(collision strategy CANCEL_NEW).")  # fmt: skip
        result.skipped += cancel_new
        _cancel_others(result.cancelling)
        return result


def prepare(
    flow_run_ids: Iterable[str], now: datetime | None = None, recheck: bool = True
) -> PreparedSubmit:
    """Read and pack a ``submit`` of these runs at ``now`` (default: the clock), to be
    executed no earlier than ``now``. ``recheck=False``: the runs are known to be in their
    pool's waiting set already (``admit_waiting``), so a release cannot miss them."""
    at = (now or _time.now()).timestamp()
    result = SubmitResult()
    ids = [str(i) for i in flow_run_ids]
    facts = scheduling.read_facts(ids)
    result.gone += sorted(set(ids) - {f.run_id for f in facts})
    candidates = []
    for f in facts:
        if f.record.get("work_pool_name"):
            candidates.append(f)
        else:
            result.held.append(f.run_id)
    if not candidates:
        return PreparedSubmit(result)
    limits = _Limits(candidates)
    held_back: dict[str, list[_HeldBack]] = {}
    entries = _plan(candidates, limits, result, held_back)
    return PreparedSubmit(result, limits, entries, held_back, at, recheck)


def _plan(
    candidates: list[scheduling.RunFacts],
    limits: _Limits,
    result: SubmitResult,
    held_back: dict[str, list[_HeldBack]],
) -> list[delivery.Admission]:
    """The runs worth an admission script: not paused, and fitting the free slots as read
    (runs held back are collected per pool in ``held_back``, for its waiting set)."""
    planned = []
    for f in candidates:
        pool, queue = str(f.record["work_pool_name"]), _queue_of(f.record)
        dep = str(f.record["deployment_id"]) if f.record.get("deployment_id") else None
        planned.append((f, pool, queue, dep, limits.slots(pool, queue, dep)))
    limits.read_usage(slot for *_, slots in planned for slot in slots)
    entries: list[delivery.Admission] = []
    for f, pool, queue, dep, slots in planned:
        deliverable = (
            f.state_type == "SCHEDULED" and f.state_name in _DELIVERABLE and not f.admitted
        )
        paused, fits = limits.paused(pool, queue), limits.fits(slots)
        if deliverable and (paused or (not fits and not limits.cancels_new(dep))):
            result.waiting.append(f.run_id)
            held_back.setdefault(pool, []).append((f.run_id, _score(f), (queue, slots)))
            continue
        limits.take(slots)
        entries.append(delivery.Admission(f.run_id, pool, queue, dep, slots))
    return entries


def _tally(
    entries: list[delivery.Admission],
    outcomes: list[list[str]],
    limits: _Limits,
    result: SubmitResult,
) -> list[str]:
    """Sort the script outcomes into ``result``; the runs CANCEL_NEW cancels."""
    cancel_new: list[str] = []
    for entry, (outcome, *others) in zip(entries, outcomes, strict=True):
        result.cancelling += others
        if outcome == "ADMITTED":
            result.admitted.append(entry.run_id)
        elif outcome.startswith("FULL:"):
            full = entry.slots[int(outcome[5:]) - 1][0]
            dep = entry.deployment_id
            if dep and full == keys.slot_deployment(dep) and limits.cancels_new(dep):
                cancel_new.append(entry.run_id)
            else:
                result.waiting.append(entry.run_id)
        elif outcome in ("WAIT", "EARLY"):
            result.waiting.append(entry.run_id)
        elif outcome == "SKIP":
            result.skipped.append(entry.run_id)
        elif outcome == "HELD":
            result.held.append(entry.run_id)
        else:
            result.gone.append(entry.run_id)
    return cancel_new


def _recheck_held_back(held_back: dict[str, list[_HeldBack]]) -> None:
    """Close the window between reading slot usage (or a pause) and joining the waiting
    set: a release or resume in it found the waiting set without these runs, so nobody
    would retry them. Now that they are in the set, read again; if one would fit, try the
    pool's waiting runs (a release from now on finds them in the set by itself)."""
    for pool, waiting in held_back.items():
        pairs = {(pool, queue) for _, _, (queue, _) in waiting}
        fresh = _Limits.current(pool, pairs)
        fresh.read_usage(slot for _, _, (_, slots) in waiting for slot in slots)
        if any(
            not fresh.paused(pool, queue) and fresh.fits(slots) for _, _, (queue, slots) in waiting
        ):
            admit_waiting(pool)


def _score(f: scheduling.RunFacts) -> float:
    expected = f.record.get("expected_start_time")
    if isinstance(expected, str):
        try:
            return datetime.fromisoformat(expected).timestamp()
        except ValueError:
            pass
    return _time.timestamp()


def admit_waiting(pool: str, budget: int = WAITING_BUDGET) -> SubmitResult:
    """Try the pool's oldest waiting runs again (after a release, a resume, a new limit)."""
    ids = delivery.waiting_runs(pool, budget)
    if not ids:
        return SubmitResult()
    result = prepare(ids, recheck=False).execute()
    delivery.forget_waiting(pool, result.gone + result.held + result.skipped)
    return result


def admit_released(run_ids: Iterable[str]) -> int:
    """Admit waiting runs of the pools the given runs (whose slots were released) were in;
    how many were admitted."""
    ids = sorted(set(run_ids))
    pool_names = {str(f.record["work_pool_name"]) for f in scheduling.read_facts(ids)
                  if f.record.get("work_pool_name")}  # fmt: skip
    return sum(len(admit_waiting(pool).admitted) for pool in sorted(pool_names))


def _cancel(run_ids: list[str], message: str) -> None:
    batch = runs.RunBatch()
    for rid in run_ids:
        batch.propose("flow", rid, runs.Proposal(state=Cancelled(message=message)))
    if len(batch):
        batch.execute()


def _cancel_others(run_ids: list[str]) -> None:
    message = "Cancelled: a newer scheduled run of the deployment started (overlap policy)."
    batch = runs.RunBatch()
    for rid in run_ids:
        batch.propose("flow", rid, runs.Proposal(state=Cancelling(message=message)))
    if len(batch):
        batch.execute()
    if run_ids:
        logger.info("asked %d active run(s) to cancel (overlap policy)", len(run_ids))
