"""Deleting a work pool or queue that is in use is refused, unless forced (which cancels
its runs that have not ended)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from prefect_lite.cli import cli
from prefect_lite.cli._errors import run_cli
from prefect_lite.client import get_client
from prefect_lite.exceptions import ObjectNotFound, ValidationError
from tests._workers import deploy, trigger


@pytest.fixture
def client() -> Iterator[Any]:
    with get_client(sync_client=True) as c:
        yield c


def test_a_pool_that_deployments_use_is_not_deleted(client: Any) -> None:
    client.create_work_pool("pool")
    deploy("hello")
    with pytest.raises(ValidationError, match=r"1 deployment\(s\) use it \('hello/test'\)"):
        client.delete_work_pool("pool")
    assert client.read_work_pool("pool").name == "pool"


def test_force_deletes_and_cancels_the_queued_runs(client: Any) -> None:
    client.create_work_pool("pool")
    dep = deploy("hello")
    runs = [trigger(dep) for _ in range(2)]
    with pytest.raises(ValidationError, match=r"2 flow run\(s\) on it have not ended"):
        client.delete_work_pool("pool")
    client.delete_work_pool("pool", force=True)
    with pytest.raises(ObjectNotFound):
        client.read_work_pool("pool")
    for run in runs:
        assert client.read_flow_run(run.id).state_name == "Cancelled"


def test_a_queue_in_use_is_not_deleted_and_the_cli_says_why(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client.create_work_pool("pool")
    client.create_work_queue("pool", "urgent")
    deploy("hello", work_queue_name="urgent")
    code = run_cli(cli, ["work-queue", "delete", "urgent", "--pool", "pool"])
    err = capsys.readouterr().err
    assert code == 1
    assert "work queue 'urgent' of pool 'pool' is in use" in err and "--force" in err
    assert "Traceback" not in err
    assert run_cli(cli, ["work-queue", "delete", "urgent", "--pool", "pool", "--force"]) == 0
    assert [q.name for q in client.read_work_queues("pool")] == ["default"]
    code = run_cli(cli, ["work-pool", "delete", "pool"])
    assert code == 1 and "work pool 'pool' is in use" in capsys.readouterr().err
