"""Plan step: create the runs of active schedules up to a horizon, exactly once.

A run's id is ``uuid5(deployment id, nominal scheduled time)`` and it is created with
create-if-absent, so replicas, restarts and redeploys can plan the same window any number of
times and still make each run once. Deployments wait in ``keys.plan_index()`` scored by
when they next need planning, so an idle deployment costs nothing per tick.

Each deployment's plan state remembers a fingerprint of what its runs are made from
(schedules, parameters, pool, paused...) and, per schedule, the time it is planned through.
A changed fingerprint first removes the unstarted auto-scheduled runs that no longer match;
a planned-through time in the past means the scheduler was down, and the schedule's
catch-up policy decides which missed runs are still made.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from prefect_lite import _time, schedules
from prefect_lite.exceptions import StoreUnavailable
from prefect_lite.names import generate_slug
from prefect_lite.schemas import Deployment, FlowRun, Schedule
from prefect_lite.states import Scheduled
from prefect_lite.storage import deployments, runs, scheduling
from scheduler.config import SchedulerConfig

logger = logging.getLogger("prefect_lite.scheduler.planner")

RUN_NAMESPACE = uuid.UUID("0b6c2a4e-3f0d-5a43-9d7e-6f1f6a3b8c21")
SCHEDULE_ID_LABEL = "prefect.schedule.id"
SCHEDULED_FOR_LABEL = "prefect.schedule.time"
AUTO_TAG = "auto-scheduled"
_US = timedelta(microseconds=1)


def scheduled_run_id(deployment_id: uuid.UUID | str, nominal: datetime) -> uuid.UUID:
    """The id of a deployment's run at ``nominal``: the same everywhere, every time."""
    stamp = _time.ensure_utc(nominal).isoformat(timespec="microseconds")
    return uuid.uuid5(RUN_NAMESPACE, f"{deployment_id}|{stamp}")


def fingerprint(deployment: Deployment) -> str:
    """Hash of everything scheduled runs are made from."""
    data = deployment.model_dump(
        mode="json",
        include={
            "flow_name", "paused", "schedules", "parameters", "tags", "version",
            "work_pool_name", "work_queue_name", "job_variables",
        },
    )  # fmt: skip
    return hashlib.sha1(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def run_fields(deployment: Deployment, schedule: Schedule) -> dict[str, Any]:
    """The fields every run of this schedule shares (compared when reconciling)."""
    return {
        "parameters": {**deployment.parameters, **schedule.parameters},
        "work_pool_name": deployment.work_pool_name,
        "work_queue_name": deployment.work_queue_name or "default",
        "tags": sorted({*deployment.tags, AUTO_TAG}),
        "job_variables": deployment.job_variables,
        "deployment_version": deployment.version,
    }


def build_run(deployment: Deployment, schedule: Schedule, nominal: datetime) -> FlowRun:
    run_id = scheduled_run_id(deployment.id, nominal)
    start = nominal + timedelta(seconds=schedules.jitter_offset(run_id, schedule.jitter_seconds))
    return FlowRun(
        id=run_id,
        name=generate_slug(),
        flow_id=deployment.flow_id,
        flow_name=deployment.flow_name,
        deployment_id=deployment.id,
        labels={
            SCHEDULE_ID_LABEL: str(schedule.id),
            SCHEDULED_FOR_LABEL: nominal.isoformat(timespec="microseconds"),
        },
        auto_scheduled=True,
        expected_start_time=start,
        **run_fields(deployment, schedule),
    )


@dataclass
class PlanReport:
    deployments: int = 0
    created: int = 0
    removed: int = 0
    backlog: bool = False  # more deployments were due than the budget allowed
    errors: list[str] = field(default_factory=list)


class Planner:
    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config

    def plan(self, now: datetime) -> PlanReport:
        """Plan every deployment whose planning time has come, within the time budget."""
        report = PlanReport()
        deadline = _time.monotonic() + self.config.plan_budget_seconds
        while True:
            ids, claimed = scheduling.claim_for_planning(
                now.timestamp(), self.config.plan_batch, self.config.plan_lease_seconds
            )
            if not ids:
                return report
            found = deployments.get_many_by_id(ids)
            states = scheduling.read_plan_states(ids)
            finished: list[tuple[str, float, float | None]] = []
            for dep_id in ids:
                deployment = found.get(dep_id)
                if deployment is None:
                    finished.append((dep_id, claimed, None))
                    continue
                try:
                    next_at = self._plan_one(deployment, states.get(dep_id), now, report)
                except StoreUnavailable:
                    raise
                except Exception as exc:  # one broken deployment must not stop the others
                    logger.exception("planning %s failed", deployment.full_name)
                    report.errors.append(f"{deployment.full_name}: {exc}")
                    next_at = now.timestamp() + self.config.retry_failed_seconds
                finished.append((dep_id, claimed, next_at))
                report.deployments += 1
            scheduling.finish_planning(finished)
            if _time.monotonic() > deadline:
                report.backlog = len(ids) == self.config.plan_batch
                return report

    # ------------------------------------------------------------------ one deployment

    def _plan_one(
        self,
        deployment: Deployment,
        state: dict[str, Any] | None,
        now: datetime,
        report: PlanReport,
    ) -> float | None:
        for _attempt in range(3):
            fp = fingerprint(deployment)
            marks: dict[str, float] = {}
            if state is None or state.get("fp") != fp:
                report.removed += self.reconcile(deployment)
            else:
                marks = dict(state.get("wm") or {})
            created, new_marks, next_at = self._create_runs(deployment, marks, now)
            report.created += created
            scheduling.write_plan_states({str(deployment.id): {"fp": fp, "wm": new_marks}})
            current = deployments.get_by_id(deployment.id)
            if current is None:  # deleted while we planned: take our runs back
                report.removed += scheduling.delete_unstarted(
                    scheduling.unstarted_auto_runs(deployment.id)
                )
                return None
            if fingerprint(current) == fp:
                return next_at
            deployment, state = current, None  # changed while we planned: again
        return now.timestamp()

    def reconcile(self, deployment: Deployment) -> int:
        """Delete unstarted auto-scheduled runs that the deployment would not make now."""
        active = [s for s in deployment.schedules if s.active and not deployment.paused]
        stale: list[FlowRun] = []
        for run in scheduling.unstarted_auto_runs(deployment.id):
            if not any(self._matches(deployment, schedule, run) for schedule in active):
                stale.append(run)
        removed = scheduling.delete_unstarted(stale)
        if removed:
            logger.info("removed %d stale scheduled run(s) of %s", removed, deployment.full_name)
        return removed

    @staticmethod
    def _matches(deployment: Deployment, schedule: Schedule, run: FlowRun) -> bool:
        try:
            nominal = datetime.fromisoformat(str(run.labels.get(SCHEDULED_FOR_LABEL)))
        except ValueError:
            return False
        if schedules.occurrences(schedule, nominal, nominal + _US) != [nominal]:
            return False
        if run.id != scheduled_run_id(deployment.id, nominal):
            return False
        expected = run_fields(deployment, schedule)
        return all(getattr(run, name) == value for name, value in expected.items())

    def _create_runs(
        self, deployment: Deployment, marks: dict[str, float], now: datetime
    ) -> tuple[int, dict[str, float], float | None]:
        """Create the runs of every active schedule; (created, new marks, next plan time)."""
        if deployment.paused:
            return 0, {}, None
        horizon = timedelta(seconds=self.config.horizon_seconds)
        batch = runs.RunBatch()
        new_marks: dict[str, float] = {}
        next_times: list[float] = []
        for schedule in deployment.schedules:
            if not schedule.active:
                continue
            mark = marks.get(str(schedule.id))
            since = _time.from_timestamp(mark) if mark is not None else None
            times = self._missed(schedule, since, now) if since is not None else []
            ahead = schedules.occurrences(schedule, now, now + horizon, self.config.horizon_runs)
            times += [t for t in ahead if since is None or t >= since]
            through = ahead[-1] + _US if len(ahead) == self.config.horizon_runs else now + horizon
            if since is not None and since > through:
                through = since
            for nominal in times:
                run = build_run(deployment, schedule, nominal)
                batch.create("flow", run, Scheduled(scheduled_time=run.expected_start_time))
            new_marks[str(schedule.id)] = through.timestamp()
            upcoming = schedules.occurrences(schedule, through, limit=1)
            if upcoming:
                half = now + (through - now) / 2
                next_times.append(max(half, upcoming[0] - horizon).timestamp())
        results = batch.execute() if len(batch) else []
        created = sum(1 for status, _ in results if status == "CREATED")
        if not next_times:
            return created, new_marks, None
        return created, new_marks, max(min(next_times), now.timestamp() + 1.0)

    def _missed(self, schedule: Schedule, since: datetime, now: datetime) -> list[datetime]:
        """Occurrences in ``[since, now)``: slightly late ones all, missed ones by policy."""
        if since >= now:
            return []
        cutoff = now - timedelta(seconds=self.config.missed_after_seconds)
        recent_from = max(since, cutoff + _US)
        recent = schedules.occurrences(schedule, recent_from, now, self.config.horizon_runs)
        if since > cutoff or schedule.catchup == "skip":
            return recent
        count = 1 if schedule.catchup == "latest" else schedule.max_catchup
        missed = schedules.last_occurrences(schedule, since, cutoff + _US, count)
        return missed + recent
