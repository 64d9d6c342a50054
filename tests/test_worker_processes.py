"""A flow run's process is not its worker's: crashes in user code stay in the child.

Segfaults, ``os._exit`` and kills end that run CRASHED (with what happened) and its
on_crashed hooks run in a fresh process; the worker keeps serving. A Redis restart in the
middle of a backlog loses no queued run.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from prefect_lite.client import get_client
from tests._redis import restartable_redis
from tests._workers import (
    deploy,
    read,
    scheduler_process,
    trigger,
    wait_final,
    worker_process,
)
from tests.helpers import pid_alive, wait_for


@pytest.fixture
def client() -> Any:
    with get_client(sync_client=True) as c:
        yield c


@pytest.mark.parametrize(
    ("function", "parameters", "how"),
    [
        ("segfault", {}, "killed by SIGSEGV"),
        ("hard_exit", {"code": 3}, "exit code 3"),
    ],
)
def test_user_code_that_kills_its_process_crashes_only_its_run(
    client: Any, tmp_path: Path, function: str, parameters: dict[str, Any], how: str
) -> None:
    client.create_work_pool("pool")
    bad, good = deploy(function, name="bad"), deploy("hello", name="good")
    with worker_process(tmp_path) as worker:
        crashed = wait_final(trigger(bad, **parameters).id)
        assert crashed.state_name == "Crashed"
        assert how in (crashed.state.message or ""), crashed.state.message
        assert pid_alive(worker.pid)
        assert wait_final(trigger(good).id).state_name == "Completed"
    assert client.read_work_pool_status("pool").active == 0


def test_a_killed_run_process_crashes_the_run_and_its_on_crashed_hooks_run(
    client: Any, tmp_path: Path
) -> None:
    client.create_work_pool("pool")
    dep = deploy("hooked")
    marks = tmp_path / "marks"
    marks.mkdir()
    with worker_process(tmp_path) as worker:
        run = trigger(dep, seconds=60, marks=str(marks))
        wait_for(lambda: (marks / f"started-{run.id}").exists(), timeout=30)
        pid = read(run.id).infrastructure_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # what the OOM killer does
        crashed = wait_final(run.id)
        assert crashed.state_name == "Crashed"
        assert "killed by SIGKILL" in (crashed.state.message or "")
        hook = marks / "on_crashed"
        wait_for(hook.exists, timeout=30, message="on_crashed hooks did not run")
        assert "killed by SIGKILL" in hook.read_text()
        assert pid_alive(worker.pid)


def test_a_redis_restart_in_the_middle_loses_no_queued_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with restartable_redis(tmp_path, monkeypatch) as server:
        with get_client(sync_client=True) as client:
            client.create_work_pool("pool")
        dep = deploy("sleepy")
        with scheduler_process(tmp_path), worker_process(tmp_path, "pool", "--limit", "1") as w:
            runs = [trigger(dep, seconds=0.3) for _ in range(6)]
            wait_final(runs[0].id)
            assert any(read(r.id).state_name == "Scheduled" for r in runs), "none was queued"
            server.stop()
            wait_for(lambda: "Redis unavailable" in w.output(), timeout=30,
                     message="the worker did not notice Redis was gone")  # fmt: skip
            server.start()
            # Queued runs were kept; a run executing meanwhile rode the outage out.
            for run in runs:
                assert wait_final(run.id, timeout=60).state_name == "Completed"


def test_a_reused_process_starts_each_run_afresh(client: Any, tmp_path: Path) -> None:
    import json

    client.create_work_pool("pool")
    dep = deploy("leaky")
    marks = tmp_path / "marks"
    marks.mkdir()
    with worker_process(tmp_path, "pool", "--limit", "1"):
        first, second = (wait_final(trigger(dep, marks=str(marks)).id) for _ in range(2))
    seen = [json.loads((marks / f"run-{r.id}").read_text()) for r in (first, second)]
    assert seen[0]["pid"] == seen[1]["pid"]  # the same warm process ran both
    assert [s["calls"] for s in seen] == [1, 1]  # user modules are imported afresh
    assert [s["leaked"] for s in seen] == [None, None]  # the environment was put back
