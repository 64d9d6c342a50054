"""The pool admission seam: ``submit(flow_run_ids)`` hands due runs to their pool's queue.

The scheduler's promote step calls ``submit`` with runs whose scheduled time has come.
For each run, atomically (one Lua script per run, safe with any number of scheduler
replicas):

1. it must still be in the due set and in a deliverable state (SCHEDULED named
   ``Scheduled``, ``Late`` or ``AwaitingRetry``) and not admitted since it last ran
   (the run hash's ``adm`` field holds ``run_count`` at admission, so a run is handed out
   once per attempt however often it re-enters the due set, e.g. when marked Late);
2. the deployment's **overlap policy** decides: ``allow`` admits; with an active run
   (PENDING, RUNNING, CANCELLING, PAUSED, or admitted and not yet claimed) ``skip``
   cancels this run, ``buffer_one`` keeps the earliest waiting run due and cancels later
   ones, ``cancel_other`` admits this run and asks the active ones to cancel;
3. admitted: the run leaves the due set and is appended to
   ``keys.pool_queue_ready(pool, queue)`` (queue ``default`` when the run names none),
   recorded in ``keys.scheduled_admitted()`` until claimed (for late marking and overlap).

Runs without a work pool are held: they stay due for whoever runs them (e.g. a runner
serving its own deployments). The run keeps its SCHEDULED state while queued; a worker
claims it by proposing PENDING.

What the workers issue swaps in behind this same function: delivery through RQ instead of
the ready list, and pool/queue/deployment concurrency slots (a run that does not fit stays
due, like ``WAIT``). It must keep: the re-check inside one atomic step, the ``adm`` field,
removal from the due set on admission, and the outcome per run. A claim should also remove
the run from ``keys.scheduled_admitted()`` (the scheduler sweeps stale entries anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from prefect_lite import _time
from prefect_lite.states import Cancelled, Cancelling
from prefect_lite.storage import keys, runs, scheduling

logger = logging.getLogger("prefect_lite.orchestration.admission")

DEFAULT_QUEUE = "default"


@dataclass
class SubmitResult:
    """What happened to each submitted run, by outcome."""

    admitted: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # stays due (buffer_one, not yet due)
    skipped: list[str] = field(default_factory=list)  # cancelled by the overlap policy
    held: list[str] = field(default_factory=list)  # not deliverable by this seam
    gone: list[str] = field(default_factory=list)  # no longer due, or admitted already
    cancelling: list[str] = field(default_factory=list)  # active runs asked to cancel


def ready_key(work_pool_name: str, work_queue_name: str | None) -> str:
    return keys.pool_queue_ready(work_pool_name, work_queue_name or DEFAULT_QUEUE)


def submit(flow_run_ids: Iterable[str], now: datetime | None = None) -> SubmitResult:
    """Admit each due run to its pool queue (see the module docstring); never raises for
    a run that changed meanwhile - it is reported as ``gone``."""
    at = (now or _time.now()).timestamp()
    result = SubmitResult()
    ids = [str(i) for i in flow_run_ids]
    facts = scheduling.read_facts(ids)
    result.gone += sorted(set(ids) - {f.run_id for f in facts})
    entries: list[scheduling.Admission] = []
    for f in facts:
        pool = f.record.get("work_pool_name")
        if not pool:
            result.held.append(f.run_id)
            continue
        entries.append(
            scheduling.Admission(
                run_id=f.run_id,
                ready=ready_key(pool, f.record.get("work_queue_name")),
                deployment_id=f.record.get("deployment_id"),
            )
        )
    outcomes = scheduling.admit(entries, at)
    for entry, (outcome, *others) in zip(entries, outcomes, strict=True):
        if outcome == "ADMITTED":
            result.admitted.append(entry.run_id)
            result.cancelling += others
        elif outcome in ("WAIT", "EARLY"):
            result.waiting.append(entry.run_id)
        elif outcome == "SKIP":
            result.skipped.append(entry.run_id)
        elif outcome == "HELD":
            result.held.append(entry.run_id)
        else:
            result.gone.append(entry.run_id)
    _cancel_skipped(result.skipped)
    _cancel_others(result.cancelling)
    return result


def _cancel_skipped(run_ids: list[str]) -> None:
    message = "Skipped: the deployment already has an active run (overlap policy)."
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
