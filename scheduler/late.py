"""Mark-late step: SCHEDULED runs more than ``late_after_seconds`` past due become ``Late``.

Two places hold such runs: the due set (not promoted yet: no scheduler, a held or
buffered run) and the admitted set (queued, no worker has claimed them). Each tick looks
only at runs that crossed the threshold since the previous tick (a cursor per set), so the
cost follows the rate of runs, not their number. Proposals carry the version read, so
replicas racing on one run change it once.

The same step sweeps claimed runs out of the admitted set, a page per tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prefect_lite import serializers
from prefect_lite.settings import get_settings
from prefect_lite.states import Late, State, StateType
from prefect_lite.storage import keys, runs, scheduling
from scheduler.config import SchedulerConfig


@dataclass
class LateReport:
    marked: int = 0
    swept: int = 0


class LateMarker:
    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self._cursors: dict[str, float | None] = {}
        self._sweep_from: float | None = None

    @property
    def late_after(self) -> float:
        configured = self.config.late_after_seconds
        return get_settings().late_after_seconds if configured is None else configured

    def mark_late(self, now: datetime) -> LateReport:
        report = LateReport()
        cutoff = now.timestamp() - self.late_after - 1e-6  # more than late_after
        for key in (keys.scheduled_due(), keys.scheduled_admitted()):
            report.marked += self._scan(key, cutoff)
        report.swept = self._sweep(cutoff)
        return report

    def _scan(self, key: str, cutoff: float) -> int:
        low = self._cursors.get(key)
        if low is not None and low >= cutoff:
            return 0
        page = scheduling.scores_between(key, low, cutoff, self.config.late_batch)
        marked = self._mark([rid for rid, _ in page], key)
        full = len(page) >= self.config.late_batch
        # A full page resumes after its last score next tick (equal scores are re-read).
        self._cursors[key] = page[-1][1] - 1e-6 if full else cutoff
        return marked

    def _mark(self, run_ids: list[str], key: str) -> int:
        batch = runs.RunBatch()
        settled: list[str] = []
        requeued: list[str] = []
        for rid, typ, name, ver, state_json, admitted in scheduling.read_state_facts(run_ids):
            if typ != StateType.SCHEDULED.value:
                settled.append(rid)
                continue
            if name != "Scheduled" or not state_json:
                continue
            state = State.from_record(serializers.loads(state_json))
            late = Late(scheduled_time=state.state_details.scheduled_time)
            batch.propose("flow", rid, runs.Proposal(state=late, expected_version=ver))
            if admitted:
                requeued.append(rid)  # the proposal puts it back in the due set
        results = batch.execute() if len(batch) else []
        scheduling.forget(keys.scheduled_due(), requeued)
        if key == keys.scheduled_admitted():
            scheduling.forget(key, settled)
        return sum(1 for r in results if not isinstance(r, Exception) and r[0] == "ACCEPT")

    def _sweep(self, cutoff: float) -> int:
        """Drop admitted entries whose run left SCHEDULED (claimed) or was re-run."""
        key = keys.scheduled_admitted()
        page = scheduling.scores_between(key, self._sweep_from, cutoff, self.config.sweep_batch)
        self._sweep_from = page[-1][1] if len(page) >= self.config.sweep_batch else None
        stale = [
            rid
            for rid, typ, _name, _ver, _state, admitted in scheduling.read_state_facts(
                [rid for rid, _ in page]
            )
            if typ != StateType.SCHEDULED.value or not admitted
        ]
        scheduling.forget(key, stale)
        return len(stale)
