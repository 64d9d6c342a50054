"""The scheduler service on a fake clock: plan, promote, mark late, catch-up, overlap, replicas."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from prefect_lite import _time
from prefect_lite.client import get_client
from prefect_lite.orchestration import admission
from prefect_lite.schedules import Cron, Interval
from prefect_lite.schemas import Deployment, FlowRun
from prefect_lite.states import AwaitingRetry, Completed, Pending, Running, Scheduled, StateType
from prefect_lite.storage import keys
from scheduler import Scheduler, SchedulerConfig
from scheduler.planner import SCHEDULED_FOR_LABEL, scheduled_run_id
from tests.helpers import wait_for

T0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
POOL = "pool-a"


@pytest.fixture(autouse=True)
def clock() -> Iterator[_time.FrozenClock]:
    with _time.frozen_time(T0) as frozen:
        yield frozen


def deploy(name: str = "nightly", **fields: Any) -> Deployment:
    fields.setdefault("work_pool_name", POOL)
    with get_client(sync_client=True) as client:
        return client.create_deployment("etl", name, **fields)


def runs_of(deployment: Deployment) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(deployment_id=deployment.id, limit=10_000)
    return sorted(found, key=lambda r: r.expected_start_time)


def nominal(run: FlowRun) -> datetime:
    return datetime.fromisoformat(run.labels[SCHEDULED_FOR_LABEL])


def ready(redis_client: redis.Redis, queue: str = "default", pool: str = POOL) -> list[str]:
    return list(redis_client.lrange(keys.pool_queue_ready(pool, queue), 0, -1))


def set_state(run_id: uuid.UUID | str, state: Any) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(uuid.UUID(str(run_id)), state)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ----------------------------------------------------------------------------- plan


def test_plan_creates_the_horizon_once_with_deterministic_ids() -> None:
    minutely = deploy(schedules=[Cron("* * * * *")], parameters={"day": "mon"})
    per_second = deploy("fast", schedules=[Interval(1)])
    report = Scheduler().tick(T0)
    assert report.plan.deployments == 2
    slow, fast = runs_of(minutely), runs_of(per_second)
    assert [nominal(r) for r in slow] == [T0 + timedelta(minutes=m) for m in range(60)]
    assert len(fast) == 100  # the next 100 runs or one hour, whichever is less
    run = slow[5]
    assert run.id == scheduled_run_id(minutely.id, nominal(run))
    assert run.auto_scheduled and "auto-scheduled" in run.tags
    assert run.parameters == {"day": "mon"} and run.work_pool_name == POOL
    assert run.state is not None and run.state.name == "Scheduled"
    assert run.state.state_details.scheduled_time == T0 + timedelta(minutes=5)
    # Again, and from a fresh replica: nothing new.
    assert Scheduler().tick(T0).plan.created == 0
    assert len(runs_of(minutely)) == 60


def test_idle_deployments_cost_nothing_per_tick(redis_client: redis.Redis) -> None:
    deploy("yearly", schedules=[Cron("0 0 1 1 *")])
    deploy("minutely", schedules=[Cron("* * * * *")])
    scheduler = Scheduler()
    assert scheduler.tick(T0).plan.deployments == 2
    assert scheduler.tick(at(1)).plan.deployments == 0
    scores = dict(redis_client.zrange(keys.plan_index(), 0, -1, withscores=True))
    yearly, minutely = sorted(scores.values(), reverse=True)
    assert yearly > (T0 + timedelta(days=300)).timestamp()  # next planned a year out
    assert minutely == at(1800).timestamp()  # half the horizon


def test_replanning_extends_the_horizon() -> None:
    dep = deploy(schedules=[Cron("* * * * *")])
    scheduler = Scheduler()
    scheduler.tick(T0)
    assert scheduler.tick(at(1800)).plan.created == 30
    assert nominal(runs_of(dep)[-1]) == at(1800 + 59 * 60)


# ----------------------------------------------------------------------------- promote, late


def test_runs_are_promoted_at_their_time_not_before(redis_client: redis.Redis) -> None:
    dep = deploy(schedules=[Cron("* * * * *")], work_queue_name="fast")
    scheduler = Scheduler()
    scheduler.tick(at(-1))
    first = scheduled_run_id(dep.id, T0)
    assert scheduler.tick(T0 - timedelta(milliseconds=1)).promote.admitted == 0
    assert ready(redis_client, "fast") == []
    assert scheduler.tick(T0).promote.admitted == 1
    assert ready(redis_client, "fast") == [str(first)]
    assert redis_client.zscore(keys.scheduled_due(), str(first)) is None
    run = runs_of(dep)[0]
    assert run.state_type == StateType.SCHEDULED  # a worker claims it by proposing PENDING
    assert Scheduler().tick(at(1)).promote.admitted == 0  # another replica: nothing twice


def test_late_runs_are_marked_once(redis_client: redis.Redis) -> None:
    dep = deploy(schedules=[Cron("* * * * *")])
    pool_less = deploy("no-pool", schedules=[Cron("* * * * *")], work_pool_name=None)
    scheduler = Scheduler()
    scheduler.tick(T0)
    assert scheduler.tick(at(15)).late.marked == 0  # not more than 15 s past due yet
    report = scheduler.tick(at(15.5))
    assert report.late.marked == 2  # the queued one and the one nobody could promote
    queued, held = runs_of(dep)[0], runs_of(pool_less)[0]
    assert (queued.state_name, held.state_name) == ("Late", "Late")
    assert queued.state_type == StateType.SCHEDULED
    assert queued.state and queued.state.state_details.scheduled_time == T0
    assert ready(redis_client) == [str(queued.id)]  # marking Late does not queue it again
    for tick in (16, 20, 30):
        assert Scheduler().tick(at(tick)).promote.admitted == 0
    assert ready(redis_client) == [str(queued.id)]


def test_runs_without_a_pool_stay_due() -> None:
    served = deploy("served", schedules=[Interval(10)], work_pool_name=None)
    scheduler = Scheduler()
    scheduler.tick(T0)
    report = scheduler.tick(at(1))
    assert report.promote.admitted == 0 and report.promote.held == 1
    result = admission.submit([str(r.id) for r in runs_of(served)], at(120))
    assert result.admitted == [] and len(result.held) == len(runs_of(served))
    report = scheduler.tick(at(120))  # long past due, but not "missed": nobody could run it
    assert (report.promote.missed, report.promote.held) == (0, 13)


def test_retry_is_redelivered_but_late_marking_is_not(redis_client: redis.Redis) -> None:
    dep = deploy(schedules=[Cron("0 * * * *")])
    scheduler = Scheduler()
    scheduler.tick(T0)
    run_id = str(scheduled_run_id(dep.id, T0))
    assert ready(redis_client) == [run_id]
    set_state(run_id, Pending())
    set_state(run_id, Running())
    set_state(run_id, AwaitingRetry(scheduled_time=at(30)))
    assert scheduler.tick(at(29)).promote.admitted == 0
    assert scheduler.tick(at(30)).promote.admitted == 1
    assert ready(redis_client) == [run_id, run_id]


# ----------------------------------------------------------------------------- changes


def test_changed_schedule_replaces_unstarted_runs_in_place() -> None:
    dep = deploy(schedules=[Cron("*/10 * * * *")], parameters={"day": "mon"})
    scheduler = Scheduler()
    scheduler.tick(T0)
    before = {r.id for r in runs_of(dep)}
    assert len(before) == 6
    dep = deploy(schedules=[Cron("*/20 * * * *")], parameters={"day": "tue"})
    report = scheduler.tick(at(1))
    after = runs_of(dep)
    assert [nominal(r) for r in after] == [T0, at(1200), at(2400), at(3600)]
    assert {r.id for r in after[:3]} <= before  # same time, same id
    assert report.plan.removed == 5  # 12:10..12:50 gone, 12:00 was already queued
    assert [r.parameters for r in after[1:]] == [{"day": "tue"}] * 3
    assert after[0].parameters == {"day": "mon"}  # promoted before the change: kept


def test_redeploying_the_same_thing_keeps_everything() -> None:
    schedule = Cron("*/10 * * * *", timezone="Europe/Berlin")
    first = deploy(schedules=[schedule])
    scheduler = Scheduler()
    scheduler.tick(T0)
    runs_before = {r.id for r in runs_of(first)}
    again = deploy(schedules=[Cron("*/10 * * * *", timezone="Europe/Berlin")])
    assert again.id == first.id and again.schedules[0].id == first.schedules[0].id
    report = scheduler.tick(T0)
    assert report.plan.deployments == 1  # looked at again, but nothing changes
    assert (report.plan.removed, report.plan.created) == (0, 0)
    assert {r.id for r in runs_of(again)} == runs_before


def test_pausing_removes_unstarted_runs_and_resuming_plans_from_now() -> None:
    dep = deploy(schedules=[Cron("*/10 * * * *")])
    scheduler = Scheduler()
    scheduler.tick(at(-1))
    with get_client(sync_client=True) as client:
        client.pause_deployment(dep.id)
        assert runs_of(dep) == []
        assert scheduler.tick(at(1)).plan.created == 0
        client.resume_deployment(dep.id)
    scheduler.tick(at(700))
    assert nominal(runs_of(dep)[0]) == at(1200)  # nothing made up for the pause


def test_pausing_one_schedule() -> None:
    dep = deploy(schedules=[Cron("*/10 * * * *", slug="ten"), Cron("*/15 * * * *", slug="15")])
    scheduler = Scheduler()
    scheduler.tick(at(-1))
    with get_client(sync_client=True) as client:
        client.update_deployment_schedule(dep.id, dep.schedules[0].id, active=False)
    scheduler.tick(at(1))
    kept = [T0, at(900), at(1800), at(2700), at(3600)]  # 12:00 is a 15-minute time too
    assert [nominal(r) for r in runs_of(dep)] == kept


def test_deleting_a_deployment_removes_its_unstarted_runs(redis_client: redis.Redis) -> None:
    dep = deploy(schedules=[Cron("*/10 * * * *")])
    Scheduler().tick(T0)
    with get_client(sync_client=True) as client:
        client.delete_deployment(dep.id)
    assert [nominal(r) for r in runs_of(dep)] == [T0]  # the queued one stays
    assert redis_client.zcard(keys.plan_index()) == 0
    assert Scheduler().tick(at(600)).plan.created == 0


# ----------------------------------------------------------------------------- catch-up


@pytest.mark.parametrize(
    ("catchup", "max_catchup", "admitted_minutes"),
    [("skip", 100, [10]), ("latest", 100, [9, 10]), ("all", 3, [7, 8, 9, 10])],
)
def test_catchup_of_runs_created_before_the_downtime(
    catchup: str, max_catchup: int, admitted_minutes: list[int], redis_client: redis.Redis
) -> None:
    dep = deploy(schedules=[Cron("* * * * *", catchup=catchup, max_catchup=max_catchup)])
    scheduler = Scheduler()
    scheduler.tick(T0)  # 12:00 queued; then no scheduler until 12:10
    report = Scheduler().tick(at(600))
    assert report.promote.admitted == len(admitted_minutes)
    by_id = {str(r.id): r for r in runs_of(dep)}
    queued = [nominal(by_id[i]).minute for i in ready(redis_client)]
    assert queued == [0, *admitted_minutes]
    skipped = [r for r in by_id.values() if r.state_type == StateType.CANCELLED]
    assert len(skipped) == 9 - (len(admitted_minutes) - 1)
    assert all(catchup in (r.state.message or "") for r in skipped if r.state)


def test_catchup_of_runs_never_created() -> None:
    dep = deploy(schedules=[Cron("* * * * *", catchup="all", max_catchup=3)])
    config = SchedulerConfig(horizon_seconds=300)
    Scheduler(config).tick(T0)  # plans 12:00..12:04
    report = Scheduler(config).tick(at(20 * 60))
    made = {nominal(r).minute for r in runs_of(dep)}
    assert {17, 18, 19} <= made and not made & set(range(5, 17))
    assert report.promote.admitted == 4  # 12:17, 12:18, 12:19 and 12:20


# ----------------------------------------------------------------------------- overlap


def _start_first_run(dep: Deployment, scheduler: Scheduler) -> str:
    scheduler.tick(T0)
    first = str(scheduled_run_id(dep.id, T0))
    set_state(first, Pending())
    set_state(first, Running())
    return first


def test_overlap_skip(redis_client: redis.Redis) -> None:
    dep = deploy(schedules=[Cron("* * * * *")], overlap="skip")
    scheduler = Scheduler()
    first = _start_first_run(dep, scheduler)
    report = scheduler.tick(at(60))
    assert (report.promote.admitted, report.promote.skipped) == (0, 1)
    second = runs_of(dep)[1]
    assert second.state_type == StateType.CANCELLED
    assert second.state and "overlap" in (second.state.message or "")
    set_state(first, Completed())
    assert scheduler.tick(at(120)).promote.admitted == 1


def test_overlap_buffer_one(redis_client: redis.Redis) -> None:
    dep = deploy(schedules=[Cron("* * * * *")], overlap="buffer_one")
    scheduler = Scheduler()
    first = _start_first_run(dep, scheduler)
    assert scheduler.tick(at(60)).promote.waiting == 1
    report = scheduler.tick(at(120))
    assert (report.promote.waiting, report.promote.skipped) == (1, 1)
    states = [r.state_type for r in runs_of(dep)[:3]]
    assert states == [StateType.RUNNING, StateType.SCHEDULED, StateType.CANCELLED]
    set_state(first, Completed())
    assert scheduler.tick(at(121)).promote.admitted == 1
    assert ready(redis_client)[-1] == str(scheduled_run_id(dep.id, at(60)))


def test_overlap_cancel_other() -> None:
    dep = deploy(schedules=[Cron("* * * * *")], overlap="cancel_other")
    scheduler = Scheduler()
    first = _start_first_run(dep, scheduler)
    assert scheduler.tick(at(60)).promote.admitted == 1
    assert runs_of(dep)[0].state_type == StateType.CANCELLING
    assert str(runs_of(dep)[0].id) == first


def test_overlap_allow_is_the_default() -> None:
    dep = deploy(schedules=[Cron("* * * * *")])
    scheduler = Scheduler()
    _start_first_run(dep, scheduler)
    assert scheduler.tick(at(60)).promote.admitted == 1


# ----------------------------------------------------------------------------- jitter


def test_jitter_delays_each_run_by_an_amount_derived_from_its_id() -> None:
    dep = deploy(schedules=[Cron("* * * * *", jitter_seconds=30)])
    Scheduler().tick(at(-120))
    delays = [(r.expected_start_time - nominal(r)).total_seconds() for r in runs_of(dep)]
    assert all(0 <= d <= 30 for d in delays) and len(set(delays)) > 10
    first = runs_of(dep)[0]
    assert first.id == scheduled_run_id(dep.id, nominal(first))
    scheduler = Scheduler()
    delay = delays[0]
    due = nominal(first) + timedelta(seconds=delay)
    assert scheduler.tick(due - timedelta(milliseconds=2)).promote.admitted == 0
    assert scheduler.tick(due).promote.admitted == 1


# ----------------------------------------------------------------------------- replicas


def test_three_replicas_make_and_queue_every_run_exactly_once(
    redis_client: redis.Redis, clock: _time.FrozenClock
) -> None:
    """Interleaved ticks of three replicas (one restarted, one redeploy) over 2 minutes."""
    fast = [deploy(f"fast-{i}", schedules=[Interval(1)]) for i in range(2)]
    slow = deploy("slow", schedules=[Cron("* * * * *")])
    replicas = [Scheduler() for _ in range(3)]
    end = 120.0
    step, t = 0.45, 0.0
    while t <= end:
        clock.set(at(t))
        order = replicas if int(t / step) % 2 else list(reversed(replicas))
        for replica in order:
            replica.tick(at(t))
        if abs(t - 60) < step / 2:
            replicas[1] = Scheduler()  # a restart
            deploy("fast-0", schedules=[Interval(1)])  # a redeploy of the same thing
        t += step
    queued = Counter(ready(redis_client))
    assert queued and max(queued.values()) == 1, "a run was queued twice"
    for dep, expected in ((fast[0], 120), (fast[1], 120), (slow, 2)):
        made = [r for r in runs_of(dep) if nominal(r) <= at(t - step)]
        assert len(made) == expected, dep.name
        assert len({nominal(r) for r in made}) == expected
        missed = [(nominal(r), r.state_name) for r in made if str(r.id) not in queued]
        assert not missed, f"{dep.name}: runs were missed"


# ----------------------------------------------------------------------------- the loop


def test_hooks_run_every_tick_and_a_failing_one_is_contained() -> None:
    seen: list[datetime] = []

    def broken(now: datetime) -> None:
        raise RuntimeError("boom")

    scheduler = Scheduler(hooks=[("record", seen.append), ("broken", broken)])
    report = scheduler.tick(at(5))
    assert seen == [at(5)]
    assert isinstance(report.hooks["broken"], RuntimeError)


def test_the_loop_runs_until_stopped() -> None:
    dep = deploy(schedules=[Interval(3600)])
    stop = threading.Event()
    scheduler = Scheduler(SchedulerConfig(loop_seconds=0.05))
    thread = threading.Thread(target=scheduler.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: len(runs_of(dep)) > 0)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_scheduled_time_of_a_manual_run_is_respected(redis_client: redis.Redis) -> None:
    dep = deploy(schedules=[])
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(
            "etl", state=Scheduled(scheduled_time=at(30)), deployment_id=dep.id,
            work_pool_name=POOL,
        )  # fmt: skip
    scheduler = Scheduler()
    assert scheduler.tick(at(29)).promote.admitted == 0
    assert scheduler.tick(at(31)).promote.admitted == 1
    assert ready(redis_client) == [str(run.id)]
