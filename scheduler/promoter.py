"""Promote step: hand runs whose time has come to their pool queue, never before their time.

Due runs are read from the due set (scored by scheduled time, kept by ``propose_state``)
in pages and passed to the admission seam (``orchestration.admission.submit``). An
auto-scheduled run still due ``missed_after_seconds`` after its time, that no scheduler
deferred on purpose (overlap buffer) and that was not admitted, was missed while no
scheduler ran: its schedule's catch-up policy decides whether it still runs, and the ones
that do not are cancelled with a message that says why.

Runs the seam holds (no pool, or a state it does not deliver) are remembered with their
score, so they are not re-read every tick until something about them changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from prefect_lite import _time, schedules
from prefect_lite.orchestration import admission
from prefect_lite.schemas import Deployment
from prefect_lite.states import Cancelled
from prefect_lite.storage import deployments, keys, runs, scheduling
from scheduler.config import SchedulerConfig
from scheduler.planner import SCHEDULE_ID_LABEL, SCHEDULED_FOR_LABEL

logger = logging.getLogger("prefect_lite.scheduler.promoter")

MAX_HELD_MEMO = 100_000
_CATCHUP_NAMES = ("Scheduled", "Late")


@dataclass
class PromoteReport:
    admitted: int = 0
    waiting: int = 0
    skipped: int = 0
    missed: int = 0  # cancelled by a catch-up policy
    held: int = 0


class Promoter:
    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self._held: dict[str, float] = {}

    def promote(self, now: datetime) -> PromoteReport:
        report = PromoteReport()
        at = now.timestamp()
        cutoff = at - self.config.missed_after_seconds
        seen_held: dict[str, float] = {}
        offset = 0
        while True:
            page = scheduling.due_page(at, offset, self.config.promote_batch)
            fresh = [(rid, s) for rid, s in page if self._held.get(rid) != s]
            seen_held.update((rid, s) for rid, s in page if self._held.get(rid) == s)
            missed = {rid for rid, s in fresh if s <= cutoff}
            dropped = self._apply_catchup(missed, now) if missed else set()
            result = admission.submit([rid for rid, _ in fresh if rid not in dropped], now)
            scores = dict(fresh)
            seen_held.update((rid, scores[rid]) for rid in result.held)
            report.admitted += len(result.admitted)
            report.waiting += len(result.waiting)
            report.skipped += len(result.skipped)
            report.missed += len(dropped)
            # Entries still in the due set shift the next page.
            offset += len(page) - len(fresh) + len(result.held) + len(result.waiting)
            if len(page) < self.config.promote_batch:
                break
        report.held = len(seen_held)
        self._held = seen_held if len(seen_held) <= MAX_HELD_MEMO else {}
        return report

    def stage(self, due_at: float, now: float) -> Staged | None:
        """Prepare the admission of the runs falling due in ``(now, due_at]``, to be
        executed once the clock reaches ``due_at`` (None when there are none)."""
        key = keys.scheduled_due()
        found = scheduling.scores_between(key, now, due_at, self.config.stage_limit)
        if not found:
            return None
        when, size = _time.from_timestamp(due_at), self.config.promote_batch
        ids = [rid for rid, _ in found]
        del found
        # Page by page, so only one page's records and deployments are in memory at once.
        pages = [admission.prepare(ids[i : i + size], when) for i in range(0, len(ids), size)]
        return Staged(pages)

    def _apply_catchup(self, missed: set[str], now: datetime) -> set[str]:
        """Cancel the missed auto-scheduled runs their catch-up policy does not run."""
        facts = scheduling.read_facts(sorted(missed))
        dep_ids = {
            str(f.record.get("deployment_id")) for f in facts if f.record.get("auto_scheduled")
        }
        found = deployments.get_many_by_id(sorted(dep_ids))
        cutoff = now - timedelta(seconds=self.config.missed_after_seconds)
        dropped: list[tuple[str, str]] = []
        for f in facts:
            deliverable = f.record.get("auto_scheduled") and f.record.get("work_pool_name")
            if not deliverable or f.admitted or f.seen or f.state_name not in _CATCHUP_NAMES:
                continue
            decision = _catchup(found.get(str(f.record.get("deployment_id"))), f.record, cutoff)
            if decision is not None:
                dropped.append((f.run_id, decision))
        if not dropped:
            return set()
        batch = runs.RunBatch()
        for rid, policy in dropped:
            message = (
                "Missed: no scheduler was running at its scheduled time, and the schedule's "
                f"catch-up policy {policy!r} does not run it now."
            )
            batch.propose("flow", rid, runs.Proposal(state=Cancelled(message=message)))
        batch.execute()
        logger.info("cancelled %d missed run(s) per their catch-up policy", len(dropped))
        return {rid for rid, _ in dropped}


class Staged:
    """Prepared admissions of the runs falling due at one instant, page by page."""

    def __init__(self, pages: list[admission.PreparedSubmit]) -> None:
        self.pages = pages

    def __len__(self) -> int:
        return sum(len(p) for p in self.pages)

    def execute(self) -> PromoteReport:
        """Admit them (call no earlier than their instant)."""
        report = PromoteReport()
        for page in self.pages:
            result = page.execute()
            report.admitted += len(result.admitted)
            report.waiting += len(result.waiting)
            report.skipped += len(result.skipped)
            report.held += len(result.held)
        return report


def _catchup(
    deployment: Deployment | None, record: dict[str, object], cutoff: datetime
) -> str | None:
    """The catch-up policy that drops this missed run, or None if it still runs."""
    if deployment is None:
        return None
    labels = record.get("labels") or {}
    assert isinstance(labels, dict)
    schedule = next(
        (s for s in deployment.schedules if str(s.id) == labels.get(SCHEDULE_ID_LABEL)), None
    )
    if schedule is None:
        return None
    try:
        nominal = datetime.fromisoformat(str(labels.get(SCHEDULED_FOR_LABEL)))
    except ValueError:
        return None
    if schedules.keep_missed(schedule, _time.ensure_utc(nominal), cutoff):
        return None
    return schedule.catchup
