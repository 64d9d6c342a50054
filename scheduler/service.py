"""The scheduler service: a ``tick(now)`` of named steps, and the loop that drives it.

Steps, in order: ``plan`` (create runs up to the horizon), ``promote`` (hand due runs to
their pool queue), ``mark_late``, ``expire_unstarted`` (start timeouts), then ``hooks``
(callables of ``now`` registered by other services, e.g. the workers' lease reaper).
Tests call ``tick`` with a fake clock; the loop (``run``) sleeps until the next due run,
the next planning time or ``loop_seconds``, whichever comes first, and stops when its
event is set (SIGINT/SIGTERM in the CLI). When runs fall due within ``stage_seconds``, the
loop prepares their admission (reads, limits, packed scripts) ahead and sends it the
moment they are due, so neither preparing nor planning delays them (``promote_on_time``).

Any number of schedulers may run against one Redis: every step is safe to repeat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefect_lite import _time
from prefect_lite.exceptions import StoreUnavailable
from prefect_lite.orchestration.outage_log import OutageLog
from prefect_lite.orchestration.reaper import Reaper
from prefect_lite.storage import scheduling
from scheduler.config import SchedulerConfig
from scheduler.late import LateMarker, LateReport
from scheduler.planner import Planner, PlanReport
from scheduler.promoter import Promoter, PromoteReport
from scheduler.start_timeouts import StartTimeouts

logger = logging.getLogger("prefect_lite.scheduler")

Hook = Callable[[datetime], Any]
_STEPS_BEFORE_DUE = 0.5  # seconds: no other step starts closer than this to a staged instant
_registered_hooks: list[tuple[str, Hook]] = []


def register_hook(name: str, hook: Hook) -> None:
    """Run ``hook(now)`` at the end of every tick of schedulers created afterwards."""
    _registered_hooks.append((name, hook))


@dataclass
class TickReport:
    now: datetime
    plan: PlanReport = field(default_factory=PlanReport)
    promote: PromoteReport = field(default_factory=PromoteReport)
    late: LateReport = field(default_factory=LateReport)
    timed_out: int = 0
    hooks: dict[str, Any] = field(default_factory=dict)


class Scheduler:
    """One scheduler replica."""

    def __init__(
        self, config: SchedulerConfig | None = None, hooks: Iterable[tuple[str, Hook]] = ()
    ) -> None:
        self.config = config or SchedulerConfig()
        self.planner = Planner(self.config)
        self.promoter = Promoter(self.config)
        self.late_marker = LateMarker(self.config)
        self.start_timeouts = StartTimeouts()
        self.reaper = Reaper()  # expired leases, silent workers, admission after releases
        self.hooks: list[tuple[str, Hook]] = [
            ("reaper", self.reaper.tick),
            *_registered_hooks,
            *hooks,
        ]

    # ------------------------------------------------------------------ the steps

    def tick(self, now: datetime | None = None) -> TickReport:
        """Run every step once at ``now`` (default: the clock)."""
        at = _time.ensure_utc(now) if now is not None else _time.now()
        report = TickReport(now=at)
        report.plan = self.plan(at)
        report.promote = self.promote(at)
        report.late = self.mark_late(at)
        report.timed_out = self.expire_unstarted(at)
        report.hooks = self.run_hooks(at)
        return report

    def plan(self, now: datetime) -> PlanReport:
        return self.planner.plan(now)

    def promote(self, now: datetime) -> PromoteReport:
        return self.promoter.promote(now)

    def mark_late(self, now: datetime) -> LateReport:
        return self.late_marker.mark_late(now)

    def expire_unstarted(self, now: datetime) -> int:
        return self.start_timeouts.expire(now)

    def run_hooks(self, now: datetime) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name, hook in self.hooks:
            try:
                results[name] = hook(now)
            except StoreUnavailable:
                raise  # the loop says so, once per outage
            except Exception as exc:  # one broken hook must not stop scheduling
                logger.exception("scheduler hook %r failed", name)
                results[name] = exc
        return results

    # ------------------------------------------------------------------ the loop

    def seconds_until_next(self, report: TickReport) -> float:
        """How long the loop may sleep after ``report``'s tick."""
        if report.plan.backlog:
            return 0.0
        now = _time.timestamp()
        wake = now + self.config.loop_seconds
        for upcoming in (scheduling.next_due_after(now), scheduling.next_plan_time()):
            if upcoming is not None:
                wake = min(wake, upcoming)
        return max(0.0, wake - now)

    def promote_on_time(self, stop: threading.Event) -> bool:
        """Prepare the runs falling due next (within ``stage_seconds``), wait for their
        instant - marking late runs and running hooks each ``loop_seconds`` meanwhile -
        then admit them; False when nothing falls due that soon."""
        now = _time.timestamp()
        due_at = scheduling.next_due_after(now)
        if due_at is None or due_at - now > self.config.stage_seconds:
            return False
        staged = self.promoter.stage(due_at, now)
        if staged is None:
            return False
        while not stop.is_set():
            left = due_at - _time.timestamp()
            if left <= 0:
                staged.execute()
                return True
            stop.wait(min(left, self.config.loop_seconds))
            if due_at - _time.timestamp() > _STEPS_BEFORE_DUE:
                at = _time.now()
                self.mark_late(at)
                self.expire_unstarted(at)
                self.run_hooks(at)
        return True

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; Redis outages (said once) and failed ticks are
        logged, not fatal. The reaper looks at who is connected in a thread of its own."""
        logger.info("scheduler started")
        outage = OutageLog(logger, "scheduler")
        watcher = threading.Thread(
            target=self.reaper.watch, args=(stop,), name="reaper-watch", daemon=True
        )
        watcher.start()
        while not stop.is_set():
            try:
                report = self.tick()
                outage.ok()
                pause = 0.0 if self.promote_on_time(stop) else self.seconds_until_next(report)
            except StoreUnavailable as exc:
                outage.failed(exc)
                pause = self.config.loop_seconds
            except Exception:  # a scheduler outlives one bad tick
                logger.exception(
                    "scheduler tick failed; next one in %s s", self.config.loop_seconds
                )
                pause = self.config.loop_seconds
            stop.wait(pause)
        logger.info("scheduler stopped")
