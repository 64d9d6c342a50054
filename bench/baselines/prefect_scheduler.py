"""Baseline: Prefect's scheduler cadence and how many runs it creates ahead, from its code.

Reads the scheduler, late-runs and worker settings Prefect runs with by default, and
counts the runs its scheduler service would pre-create for one deployment of each
benchmark shape (``* * * * *`` and a 1-second interval) by running Prefect's own date
generator with the same stopping rule as ``_generate_scheduled_flow_runs`` (stop once both
``min_runs`` and ``min_scheduled_time`` are met, never more than ``max_runs`` or past
``max_scheduled_time``).
"""

from __future__ import annotations

import datetime

import harness
from prefect.server.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.settings import get_current_settings


def precreated(schedule: object, settings: object) -> tuple[int, float]:
    """(runs created ahead, seconds between now and the last one) for one schedule."""
    sched = settings.server.services.scheduler  # type: ignore[attr-defined]
    start = datetime.datetime.now(datetime.UTC)
    end = start + sched.max_scheduled_time
    dates = []
    for when in schedule._get_dates_generator(n=sched.max_runs, start=start, end=end):  # type: ignore[attr-defined]
        dates.append(when)
        if len(dates) >= sched.min_runs and when >= start + sched.min_scheduled_time:
            break
    horizon = (dates[-1] - start).total_seconds() if dates else 0.0
    return len(dates), horizon


def main() -> None:
    settings = get_current_settings()
    services = settings.server.services
    minutely = precreated(CronSchedule(cron="* * * * *"), settings)
    per_second = precreated(IntervalSchedule(interval=datetime.timedelta(seconds=1)), settings)
    harness.emit(
        {
            "scheduler_loop_seconds": services.scheduler.loop_seconds,
            "scheduler_max_runs": services.scheduler.max_runs,
            "scheduler_min_runs": services.scheduler.min_runs,
            "scheduler_min_scheduled_time_s": services.scheduler.min_scheduled_time.total_seconds(),
            "scheduler_max_scheduled_time_s": services.scheduler.max_scheduled_time.total_seconds(),
            "scheduler_deployment_batch_size": services.scheduler.deployment_batch_size,
            "scheduler_insert_batch_size": services.scheduler.insert_batch_size,
            "recent_deployments_loop_seconds": services.scheduler.recent_deployments_loop_seconds,
            "late_runs_loop_seconds": services.late_runs.loop_seconds,
            "late_runs_after_seconds": services.late_runs.after_seconds.total_seconds(),
            "worker_query_seconds": settings.worker.query_seconds,
            "worker_prefetch_seconds": settings.worker.prefetch_seconds,
            "minutely_precreated_runs": minutely[0],
            "minutely_horizon_s": minutely[1],
            "per_second_precreated_runs": per_second[0],
            "per_second_horizon_s": per_second[1],
        }
    )


if __name__ == "__main__":
    main()
