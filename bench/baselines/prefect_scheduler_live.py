"""Baseline: Prefect's scheduler service run for real, on the benchmark's schedule shapes.

Registers ``--cron`` deployments with ``* * * * *`` and ``--interval`` deployments with a
1-second interval schedule in a fresh SQLite database (its own PREFECT_HOME), then runs
the scheduler service's pass (``schedule_deployments``, the function its perpetual
service calls every ``loop_seconds``):

- one pass, timed: runs created per deployment of each shape and the horizon they reach;
- ``--replicas`` passes at once on the same database, the way several servers would run
  it: runs beyond the first for any (deployment, scheduled time), and passes that raised;
- the settings it schedules and marks late by (loop intervals, run limits, the late
  threshold, the worker's polling), as configured by default.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import tempfile
import time
from collections import Counter
from typing import Any

import harness


def _fresh_home() -> None:
    home = tempfile.mkdtemp(prefix="prefect-scheduler-home-")
    os.environ["PREFECT_HOME"] = home
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home}/prefect.db"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"


async def _register(cron: int, interval: int) -> dict[str, str]:
    """Deployment id -> shape, registered through Prefect's server models."""
    from prefect.server import models, schemas
    from prefect.server.database import provide_database_interface
    from prefect.server.schemas.schedules import CronSchedule, IntervalSchedule

    db = provide_database_interface()
    await db.create_db()
    shapes: dict[str, str] = {}
    async with db.session_context(begin_transaction=True) as session:
        flow = await models.flows.create_flow(session, flow=schemas.core.Flow(name="bench"))
        assert flow is not None
        for index in range(cron + interval):
            minutely = index < cron
            schedule: Any = (
                CronSchedule(cron="* * * * *")
                if minutely
                else IntervalSchedule(interval=datetime.timedelta(seconds=1))
            )
            deployment = await models.deployments.create_deployment(
                session,
                schemas.core.Deployment(
                    name=f"d{index}",
                    flow_id=flow.id,
                    schedules=[schemas.core.DeploymentSchedule(schedule=schedule, active=True)],
                ),
            )
            assert deployment is not None
            shapes[str(deployment.id)] = "minutely" if minutely else "per_second"
    return shapes


async def _runs_by_deployment() -> tuple[Counter[str], dict[str, float]]:
    """Scheduled runs per deployment, and the furthest run time (s from now) per shape key."""
    from prefect.server.database import provide_database_interface
    from sqlalchemy import func, select

    db = provide_database_interface()
    async with db.session_context() as session:
        rows = (
            await session.execute(
                select(
                    db.FlowRun.deployment_id,
                    func.count(),
                    func.max(db.FlowRun.next_scheduled_start_time),
                ).group_by(db.FlowRun.deployment_id)
            )
        ).all()
    counts: Counter[str] = Counter()
    furthest: dict[str, float] = {}
    now = datetime.datetime.now(datetime.UTC)
    for deployment_id, count, last in rows:
        counts[str(deployment_id)] = count
        if last is not None:
            if last.tzinfo is None:
                last = last.replace(tzinfo=datetime.UTC)
            furthest[str(deployment_id)] = (last - now).total_seconds()
    return counts, furthest


async def _duplicates() -> int:
    """Runs beyond the first for any (deployment, scheduled time)."""
    from prefect.server.database import provide_database_interface
    from sqlalchemy import func, select

    db = provide_database_interface()
    async with db.session_context() as session:
        counts = (
            await session.execute(
                select(func.count())
                .select_from(db.FlowRun)
                .group_by(db.FlowRun.deployment_id, db.FlowRun.expected_start_time)
            )
        ).scalars()
        return sum(count - 1 for count in counts)


async def _pass() -> None:
    from prefect.server.services.scheduler import schedule_deployments

    await schedule_deployments()


async def _concurrent(replicas: int) -> int:
    """Run ``replicas`` passes at once; the number that raised."""
    outcomes = await asyncio.gather(*(_pass() for _ in range(replicas)), return_exceptions=True)
    return sum(isinstance(outcome, BaseException) for outcome in outcomes)


async def measure(cron: int, interval: int, replicas: int) -> dict[str, Any]:
    from prefect.settings import get_current_settings

    started = time.perf_counter()
    shapes = await _register(cron, interval)
    registered_s = time.perf_counter() - started

    started = time.perf_counter()
    await _pass()
    first_pass_s = time.perf_counter() - started
    counts, furthest = await _runs_by_deployment()
    created = sum(counts.values())

    def per_shape(shape: str, table: dict[str, Any]) -> list[Any]:
        return sorted(table.get(d, 0) for d, s in shapes.items() if s == shape)

    minutely = per_shape("minutely", counts)
    per_second = per_shape("per_second", counts)
    minutely_horizon = per_shape("minutely", furthest)
    per_second_horizon = per_shape("per_second", furthest)

    # Several passes at once over the same database: each run id must still exist once.
    started = time.perf_counter()
    failed = await _concurrent(replicas)
    concurrent_s = time.perf_counter() - started
    duplicates = await _duplicates()

    settings = get_current_settings()
    services = settings.server.services
    return {
        "deployments": cron + interval,
        "registered_s": registered_s,
        "first_pass_s": first_pass_s,
        "runs_created": created,
        "runs_per_s": created / first_pass_s if first_pass_s else None,
        "minutely_runs_per_deployment": minutely[len(minutely) // 2] if minutely else None,
        "minutely_horizon_s": max(minutely_horizon) if minutely_horizon else None,
        "per_second_runs_per_deployment": per_second[len(per_second) // 2] if per_second else None,
        "per_second_horizon_s": max(per_second_horizon) if per_second_horizon else None,
        "replica_passes": replicas,
        "replica_passes_failed": failed,
        "replica_pass_s": concurrent_s,
        "duplicate_runs": duplicates,
        "scheduler_loop_seconds": services.scheduler.loop_seconds,
        "recent_deployments_loop_seconds": services.scheduler.recent_deployments_loop_seconds,
        "scheduler_max_runs": services.scheduler.max_runs,
        "scheduler_min_runs": services.scheduler.min_runs,
        "scheduler_min_scheduled_time_s": services.scheduler.min_scheduled_time.total_seconds(),
        "scheduler_max_scheduled_time_s": services.scheduler.max_scheduled_time.total_seconds(),
        "late_runs_loop_seconds": services.late_runs.loop_seconds,
        "late_runs_after_seconds": services.late_runs.after_seconds.total_seconds(),
        "worker_query_seconds": settings.worker.query_seconds,
        "worker_prefetch_seconds": settings.worker.prefetch_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cron", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args()
    _fresh_home()
    harness.emit(asyncio.run(measure(args.cron, args.interval, args.replicas)))


if __name__ == "__main__":
    main()
