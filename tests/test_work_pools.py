"""Work pools and queues: records, CLI, admission with slots, RQ delivery and claims.

No worker processes here (see test_worker*.py): runs are admitted by calling the admission
seam and claimed with the storage claim a worker uses.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from prefect_lite import _time
from prefect_lite.cli import cli
from prefect_lite.cli._errors import run_cli
from prefect_lite.client import get_client
from prefect_lite.exceptions import ObjectAlreadyExists, ObjectNotFound, ValidationError
from prefect_lite.orchestration import admission
from prefect_lite.schemas import FlowRun
from prefect_lite.states import Cancelling, Completed, Pending, Running, Scheduled
from prefect_lite.storage import delivery, keys, leases
from prefect_lite.storage.connection import get_redis_bytes


@pytest.fixture
def client() -> Any:
    with get_client(sync_client=True) as c:
        yield c


def due_run(client: Any, pool: str = "p", queue: str | None = None, **fields: Any) -> FlowRun:
    return client.create_flow_run(
        "etl",
        state=Scheduled(scheduled_time=_time.now()),
        work_pool_name=pool,
        work_queue_name=queue,
        **fields,
    )


def state_of(client: Any, run: FlowRun) -> str:
    found = client.read_flow_run(run.id)
    return f"{found.state_type.value}/{found.state_name}"


def claim(pool: str, queues: list[str]) -> delivery.Claimed | None:
    now = _time.timestamp()
    pending = json.dumps(Pending().to_record())
    return delivery.claim(pool, queues, uuid.uuid4().hex, now + 30, pending, now)


# ----------------------------------------------------------------------------- records


def test_pools_have_a_default_queue_and_reject_duplicates(client: Any) -> None:
    pool = client.create_work_pool("etl-pool", description="nightly", concurrency_limit=3)
    assert (pool.type, pool.concurrency_limit, pool.default_queue_name) == ("process", 3, "default")
    assert [q.name for q in client.read_work_queues("etl-pool")] == ["default"]
    assert [p.name for p in client.read_work_pools()] == ["etl-pool"]
    with pytest.raises(ObjectAlreadyExists, match="'etl-pool' already exists"):
        client.create_work_pool("etl-pool")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a.b"}, "invalid work pool name 'a.b'"),
        ({"name": "a:b"}, "invalid work pool name"),
        ({"name": ""}, "invalid work pool name"),
        ({"name": "ok", "type": "k8s"}, "unknown work pool type 'k8s'"),
        ({"name": "ok", "concurrency_limit": -1}, "concurrency limit must be between 0"),
        ({"name": "ok", "description": "x" * 2001}, "description is 2001 characters"),
    ],
)
def test_bad_pool_input_is_a_clear_error(client: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        client.create_work_pool(**kwargs)


def test_unknown_pool_and_queue_are_clear_errors(client: Any) -> None:
    client.create_work_pool("real")
    with pytest.raises(ObjectNotFound, match=r"no work pool named 'nope' \(pools: real\)"):
        client.read_work_pool("nope")
    with pytest.raises(ObjectNotFound, match=r"has no queue 'x' \(its queues: default\)"):
        client.read_work_queue("real", "x")
    with pytest.raises(ObjectNotFound):
        client.create_work_queue("nope", "q")


def test_queues_are_listed_in_priority_order(client: Any) -> None:
    client.create_work_pool("p")
    assert client.create_work_queue("p", "low").priority == 2  # after the existing ones
    client.create_work_queue("p", "urgent", priority=1)  # goes first, the others move down
    client.create_work_queue("p", "bulk", priority=5, concurrency_limit=2)
    found = client.read_work_queues("p")
    assert [(q.name, q.priority) for q in found] == [
        ("urgent", 1),
        ("default", 2),
        ("low", 3),
        ("bulk", 5),
    ]
    with pytest.raises(ObjectAlreadyExists):
        client.create_work_queue("p", "low")
    with pytest.raises(ValidationError, match="priority must be between 1"):
        client.create_work_queue("p", "zero", priority=0)
    with pytest.raises(ValidationError, match="default queue"):
        client.delete_work_queue("p", "default")
    client.delete_work_queue("p", "low")
    assert [q.name for q in client.read_work_queues("p")] == ["urgent", "default", "bulk"]


def test_update_pool_and_queue(client: Any) -> None:
    client.create_work_pool("p", concurrency_limit=2)
    assert client.update_work_pool("p", paused=True).paused
    assert client.update_work_pool("p", concurrency_limit=5).concurrency_limit == 5
    assert client.update_work_pool("p", clear_concurrency_limit=True).concurrency_limit is None
    queue = client.update_work_queue("p", "default", priority=3, concurrency_limit=1)
    assert (queue.priority, queue.concurrency_limit) == (3, 1)
    client.delete_work_pool("p")
    with pytest.raises(ObjectNotFound):
        client.read_work_pool("p")


# ----------------------------------------------------------------------------- admission


def test_admitted_runs_are_rq_jobs_carrying_only_the_run_id(client: Any) -> None:
    delivery.check_rq_names()
    client.create_work_pool("p")
    run = due_run(client)
    assert admission.submit([str(run.id)]).admitted == [str(run.id)]
    rq_queue = delivery.rq_queue("p", "default")
    assert rq_queue.key == keys.pool_queue_ready("p", "default")
    assert rq_queue.job_ids == [str(run.id)]
    job = Job.fetch(str(run.id), connection=get_redis_bytes(), serializer=JSONSerializer)
    assert (job.args, job.kwargs, job.origin) == ([str(run.id)], {}, rq_queue.name)
    assert job.get_status() == "queued"
    assert state_of(client, run) == "SCHEDULED/Scheduled"  # a worker claims it
    assert admission.submit([str(run.id)]).gone == [str(run.id)]  # once per attempt


def test_pool_limit_holds_runs_back_and_a_release_admits_the_next(client: Any) -> None:
    client.create_work_pool("p", concurrency_limit=2)
    created = [due_run(client) for _ in range(5)]
    ids = [str(r.id) for r in created]
    result = admission.submit(ids)
    assert result.admitted == ids[:2] and sorted(result.waiting) == sorted(ids[2:])
    assert client.read_work_pool_status("p").waiting == 3
    claimed = claim("p", ["default"])
    assert claimed is not None and claimed.run_id == ids[0]
    assert admission.submit(ids[2:]).admitted == []  # a claimed run still holds its slot
    client.set_flow_run_state(created[0].id, Running())
    client.set_flow_run_state(created[0].id, Completed())  # releases, and says so
    notices = delivery.pop_admit_notices(None)
    assert notices == [ids[0]]
    assert admission.admit_released(notices) == 1
    assert delivery.rq_queue("p", "default").job_ids == [ids[1], ids[2]]
    status = client.read_work_pool_status("p")
    assert (status.active, status.waiting, status.queues[0].queued) == (2, 2, 2)


def test_a_release_while_a_submit_holds_a_run_back_does_not_strand_it(client: Any) -> None:
    """The slot pre-check reads usage before the run joins the waiting set; a release in
    between finds the set empty. The submit reads again once the run is in the set."""
    client.create_work_pool("p", concurrency_limit=1)
    holder, late = due_run(client), due_run(client)
    assert admission.submit([str(holder.id)]).admitted == [str(holder.id)]
    prepared = admission.prepare([str(late.id)])  # reads: the pool is full
    client.set_flow_run_state(holder.id, Running())
    client.set_flow_run_state(holder.id, Completed())  # the release lands in the window
    assert admission.admit_released(delivery.pop_admit_notices(None)) == 0  # set was empty
    assert prepared.execute().waiting == [str(late.id)]
    assert delivery.rq_queue("p", "default").job_ids == [str(holder.id), str(late.id)]
    assert client.read_work_pool_status("p").waiting == 0


def test_a_resume_while_a_submit_holds_a_run_back_does_not_strand_it(client: Any) -> None:
    client.create_work_pool("p", paused=True)
    run = due_run(client)
    prepared = admission.prepare([str(run.id)])  # reads: the pool is paused
    client.update_work_pool("p", paused=False)  # admits what waits: nothing yet
    assert delivery.rq_queue("p", "default").job_ids == []
    prepared.execute()
    assert delivery.rq_queue("p", "default").job_ids == [str(run.id)]


def test_queue_and_deployment_limits(client: Any) -> None:
    client.create_work_pool("p")
    client.create_work_queue("p", "narrow", concurrency_limit=1)
    dep = client.create_deployment("etl", "capped", work_pool_name="p", concurrency_limit=1)
    narrow = [due_run(client, queue="narrow") for _ in range(2)]
    capped = [due_run(client, deployment_id=dep.id) for _ in range(2)]
    free = [due_run(client) for _ in range(3)]
    result = admission.submit([str(r.id) for r in narrow + capped + free])
    expected = [str(r.id) for r in (narrow[0], capped[0], *free)]
    assert sorted(result.admitted) == sorted(expected)
    assert sorted(result.waiting) == sorted([str(narrow[1].id), str(capped[1].id)])


def test_cancel_new_collision_strategy_cancels_instead_of_waiting(client: Any) -> None:
    client.create_work_pool("p")
    dep = client.create_deployment(
        "etl", "solo", work_pool_name="p", concurrency_limit=1, collision_strategy="CANCEL_NEW"
    )
    first, second = due_run(client, deployment_id=dep.id), due_run(client, deployment_id=dep.id)
    result = admission.submit([str(first.id), str(second.id)])
    assert result.admitted == [str(first.id)] and result.skipped == [str(second.id)]
    assert state_of(client, second) == "CANCELLED/Cancelled"
    assert "CANCEL_NEW" in (client.read_flow_run(second.id).state.message or "")


def test_a_paused_pool_or_queue_holds_runs_until_resumed(client: Any) -> None:
    client.create_work_pool("p", paused=True)
    run = due_run(client)
    assert admission.submit([str(run.id)]).waiting == [str(run.id)]
    client.update_work_pool("p", paused=False)  # resuming admits what waited
    assert delivery.rq_queue("p", "default").job_ids == [str(run.id)]
    client.update_work_queue("p", "default", paused=True)
    other = due_run(client)
    assert admission.submit([str(other.id)]).waiting == [str(other.id)]


def test_unregistered_pools_admit_without_limits_and_missing_queues_are_created(
    client: Any,
) -> None:
    loose = due_run(client, pool="nowhere")
    assert admission.submit([str(loose.id)]).admitted == [str(loose.id)]
    client.create_work_pool("p")
    run = due_run(client, queue="adhoc")
    assert admission.submit([str(run.id)]).admitted == [str(run.id)]
    assert [q.name for q in client.read_work_queues("p")] == ["default", "adhoc"]


# ----------------------------------------------------------------------------- claims


def test_claims_follow_queue_priority_then_age(client: Any) -> None:
    client.create_work_pool("p")
    client.create_work_queue("p", "urgent", priority=1)
    client.update_work_queue("p", "default", priority=2)
    slow = [due_run(client) for _ in range(2)]
    fast = due_run(client, queue="urgent")
    admission.submit([str(r.id) for r in (*slow, fast)])
    order = [claim("p", ["urgent", "default"]) for _ in range(3)]
    assert [c.run_id for c in order if c] == [str(fast.id), str(slow[0].id), str(slow[1].id)]
    assert claim("p", ["urgent", "default"]) is None


def test_a_claim_makes_the_run_pending_under_a_lease(
    client: Any, redis_client: redis.Redis
) -> None:
    client.create_work_pool("p")
    run = due_run(client)
    admission.submit([str(run.id)])
    claimed = claim("p", ["default"])
    assert claimed is not None and claimed.queue == "default"
    assert state_of(client, run) == "PENDING/Pending"
    assert redis_client.hget(keys.flow_run(str(run.id)), "lease") == claimed.lease
    assert redis_client.zscore(keys.leases(), str(run.id)) is not None
    assert not redis_client.exists(keys.rq_job(str(run.id)))
    assert redis_client.zscore(keys.scheduled_admitted(), str(run.id)) is None
    # The lease is the claimer's: a proposal with another token is stale.
    stale = client.set_flow_run_state(run.id, Running(), lease="someone-else")
    assert stale.status == "REJECT" and stale.details == "stale version or lease"
    assert leases.renew_leases([(str(run.id), claimed.lease)], 1e12) == ["PENDING"]
    assert leases.renew_leases([(str(run.id), "other")], 1e12) == ["LOST"]


def test_a_run_cancelled_while_queued_is_not_claimed(client: Any) -> None:
    client.create_work_pool("p")
    cancelled, kept = due_run(client), due_run(client)
    admission.submit([str(cancelled.id), str(kept.id)])
    client.set_flow_run_state(cancelled.id, Cancelling())  # a queued run is cancelled at once
    assert state_of(client, cancelled) == "CANCELLED/Cancelled"
    claimed = claim("p", ["default"])
    assert claimed is not None and claimed.run_id == str(kept.id)
    assert state_of(client, cancelled) == "CANCELLED/Cancelled"


def test_marking_a_queued_run_late_keeps_its_slot(client: Any) -> None:
    client.create_work_pool("p", concurrency_limit=1)
    first, second = due_run(client), due_run(client)
    admission.submit([str(first.id), str(second.id)])
    client.set_flow_run_state(first.id, Scheduled(name="Late"))
    assert admission.submit([str(second.id)]).waiting == [str(second.id)]
    assert claim("p", ["default"]) is not None
    assert state_of(client, first) == "PENDING/Pending"


# ----------------------------------------------------------------------------- CLI


class Out:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Out]:
    def invoke(*args: str) -> Out:
        capsys.readouterr()
        code = run_cli(cli, list(args))
        captured = capsys.readouterr()
        return Out(code, captured.out, captured.err)

    return invoke


def test_work_pool_and_queue_commands(run: Callable[..., Out], client: Any) -> None:
    assert run("work-pool", "create", "etl", "--concurrency-limit", "4").code == 0
    assert run("work-queue", "create", "urgent", "--pool", "etl", "--priority", "1").code == 0
    listed = json.loads(run("work-pool", "ls", "--json").stdout)
    assert [p["name"] for p in listed] == ["etl"]
    assert run("work-pool", "pause", "etl").code == 0
    assert client.read_work_pool("etl").paused
    assert run("work-pool", "resume", "etl").code == 0
    assert run("work-pool", "set-concurrency-limit", "etl", "7").code == 0
    assert client.read_work_pool("etl").concurrency_limit == 7
    assert run("work-pool", "clear-concurrency-limit", "etl").code == 0
    assert client.read_work_pool("etl").concurrency_limit is None
    status = json.loads(run("work-pool", "inspect", "etl", "--json").stdout)
    assert [q["name"] for q in status["queues"]] == ["urgent", "default"]
    human = run("work-pool", "inspect", "etl")
    assert human.code == 0 and "urgent" in human.stdout and "Workers" in human.stdout
    queues = json.loads(run("work-queue", "ls", "--pool", "etl", "--json").stdout)
    assert [q["name"] for q in queues] == ["urgent", "default"]
    assert run("work-queue", "pause", "urgent", "--pool", "etl").code == 0
    assert client.read_work_queue("etl", "urgent").paused
    assert run("work-queue", "resume", "urgent", "--pool", "etl").code == 0
    assert run("work-queue", "set-concurrency-limit", "urgent", "2", "--pool", "etl").code == 0
    assert client.read_work_queue("etl", "urgent").concurrency_limit == 2
    assert run("work-queue", "delete", "urgent", "--pool", "etl").code == 0
    assert run("work-pool", "delete", "etl").code == 0
    assert client.read_work_pools() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("work-pool", "inspect", "ghost"), "no work pool named 'ghost'"),
        (("work-pool", "create", "bad.name"), "invalid work pool name 'bad.name'"),
        (("work-queue", "ls", "--pool", "ghost"), "no work pool named 'ghost'"),
        (("work-queue", "delete", "default", "--pool", "p"), "default queue"),
        (("work-queue", "pause", "nope", "--pool", "p"), "has no queue 'nope'"),
    ],
)
def test_cli_errors_are_one_line(
    run: Callable[..., Out], client: Any, args: tuple[str, ...], message: str
) -> None:
    client.create_work_pool("p")
    out = run(*args)
    assert out.code == 1 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
