"""Staged promotion: runs falling due soon are prepared ahead and admitted at their instant."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from prefect_lite import _time
from prefect_lite.client import get_client
from prefect_lite.schedules import Cron
from prefect_lite.schemas import Deployment
from prefect_lite.storage import delivery, keys
from prefect_lite.storage.connection import get_redis_bytes
from scheduler import Scheduler, SchedulerConfig
from scheduler.planner import scheduled_run_id
from tests.helpers import wait_for

T0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
POOL = "pool-s"


@pytest.fixture(autouse=True)
def clock() -> Iterator[_time.FrozenClock]:
    with _time.frozen_time(T0) as frozen:
        yield frozen


def deploy(name: str, **fields: object) -> Deployment:
    with get_client(sync_client=True) as client:
        return client.create_deployment("etl", name, work_pool_name=POOL, **fields)


def ready(redis_client: redis.Redis) -> list[str]:
    return [str(x) for x in redis_client.lrange(keys.pool_queue_ready(POOL, "default"), 0, -1)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_staging_writes_nothing_and_executing_admits(redis_client: redis.Redis) -> None:
    deps = [deploy(f"d{i}", schedules=[Cron("* * * * *")]) for i in range(3)]
    scheduler = Scheduler()
    scheduler.tick(at(-1))
    due_at = at(60).timestamp()
    staged = scheduler.promoter.stage(due_at, at(57).timestamp())
    assert staged is not None and len(staged) == 3
    assert ready(redis_client) == []
    expected = {str(scheduled_run_id(d.id, at(60))) for d in deps}
    assert all(redis_client.zscore(keys.scheduled_due(), rid) for rid in expected)
    assert staged.execute().admitted == 3
    assert set(ready(redis_client)) == expected
    assert staged.execute().admitted == 0  # sent again: each run is admitted once


def test_a_server_that_lost_its_scripts_since_staging_still_admits(
    redis_client: redis.Redis,
) -> None:
    dep = deploy("flushed", schedules=[Cron("* * * * *")])
    scheduler = Scheduler()
    scheduler.tick(at(-1))
    staged = scheduler.promoter.stage(at(60).timestamp(), at(57).timestamp())
    assert staged is not None
    redis_client.script_flush()
    assert staged.execute().admitted == 1
    assert ready(redis_client) == [str(scheduled_run_id(dep.id, at(60)))]


def test_the_staged_job_hash_is_rqs() -> None:
    dep = deploy("one", schedules=[Cron("* * * * *")])
    scheduler = Scheduler()
    scheduler.tick(at(-1))
    scheduler.tick(at(60))
    rid = str(scheduled_run_id(dep.id, at(60)))
    stored = get_redis_bytes().hgetall(keys.rq_job(rid))
    fields = delivery.job_fields(rid, POOL, "default")
    reference = {
        str(k).encode(): v if isinstance(v, bytes) else str(v).encode()
        for k, v in zip(fields[::2], fields[1::2], strict=True)
    }
    skip = {b"created_at", b"enqueued_at"}
    assert set(stored) == set(reference)
    assert {k: v for k, v in stored.items() if k not in skip} == {
        k: v for k, v in reference.items() if k not in skip
    }
    job = delivery.rq_queue(POOL, "default").fetch_job(rid)
    assert job is not None and job.args == [rid] and job.func_name == delivery.JOB_FUNCTION


def test_promote_on_time_waits_for_the_instant(
    redis_client: redis.Redis, clock: _time.FrozenClock
) -> None:
    dep = deploy("timed", schedules=[Cron("* * * * *")])
    waits: list[datetime] = []
    scheduler = Scheduler(SchedulerConfig(loop_seconds=0.01), hooks=[("probe", waits.append)])
    scheduler.tick(at(-1))
    clock.set(at(56))
    stop = threading.Event()
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(scheduler.promote_on_time(stop)))
    thread.start()
    try:
        wait_for(lambda: len(waits) >= 3)  # staged, and waiting (steps run meanwhile)
        clock.set(at(59))
        wait_for(lambda: len(waits) >= 6)
        assert ready(redis_client) == []  # never before its time
        clock.set(at(60))
        wait_for(lambda: outcome)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert outcome == [True]
    assert ready(redis_client) == [str(scheduled_run_id(dep.id, at(60)))]


def test_nothing_due_soon_is_not_staged() -> None:
    deploy("later", schedules=[Cron("0 * * * *")])
    scheduler = Scheduler()
    scheduler.tick(at(1))
    assert scheduler.promote_on_time(threading.Event()) is False
