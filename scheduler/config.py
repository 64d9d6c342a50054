"""Tunables of the scheduler service (a frozen value: one per ``Scheduler``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SchedulerConfig:
    """How far ahead to plan, how much work one tick may do, and when a run is missed.

        The horizon is "the next ``horizon_runs`` runs or ``horizon_seconds``, whichever is
        less", per schedule. A due run still unpromoted ``missed_after_seconds`` after its time
        was missed (no scheduler was running): its schedule's catch-up policy decides whether it
        still runs. ``late_after_seconds`` None means the ``late_after_seconds`` setting. Runs
    falling due within ``stage_seconds`` (up to ``stage_limit`` of them) are prepared ahead and
    promoted the moment they are due.
    """

    loop_seconds: float = 1.0
    horizon_runs: int = 100
    horizon_seconds: float = 3600.0
    missed_after_seconds: float = 60.0
    late_after_seconds: float | None = None
    stage_seconds: float = 5.0
    stage_limit: int = 50_000
    plan_batch: int = 200
    plan_budget_seconds: float = 0.25
    plan_lease_seconds: float = 30.0
    retry_failed_seconds: float = 60.0
    promote_batch: int = 1000
    late_batch: int = 2000
    sweep_batch: int = 2000
