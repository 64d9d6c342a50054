"""``serve``: a process running its own deployments' runs, no worker, through the client."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from prefect_lite import _time
from prefect_lite.client import get_client
from prefect_lite.deployments import RunnerDeployment, serve
from prefect_lite.deployments.runner import Runner
from prefect_lite.schemas import FlowRun
from prefect_lite.states import Scheduled
from tests._workers import FLOWS, read, wait_final
from tests.helpers import REPO_ROOT, python_env, wait_for


@pytest.fixture
def client() -> Any:
    with get_client(sync_client=True) as c:
        yield c


def served(runner: Runner, function: str, **options: Any) -> Any:
    deployment = RunnerDeployment.from_entrypoint(
        f"{FLOWS}:{function}", f"served-{function}", base_dir=REPO_ROOT, **options
    )
    deployment_id = runner.add_deployment(deployment)
    with get_client(sync_client=True) as client:
        return client.read_deployment(deployment_id)


def trigger(client: Any, deployment: Any, **parameters: Any) -> FlowRun:
    return client.create_flow_run(
        deployment.flow_name,
        parameters={**deployment.parameters, **parameters},
        deployment_id=deployment.id,
        state=Scheduled(scheduled_time=_time.now()),
    )


def drive(runner: Runner, run_id: Any, timeout: float = 30.0) -> FlowRun:
    """Run the runner's loop until the run ended."""

    def ended() -> FlowRun | None:
        runner.run_once()
        run = read(run_id)
        return (
            run if run.state is not None and run.state.is_final() and not runner.running else None
        )

    return wait_for(ended, timeout=timeout, interval=0.05, message=f"run {run_id} did not end")


def test_a_runner_runs_its_deployments_runs(client: Any) -> None:
    runner = Runner()
    deployment = served(runner, "hello", parameters={"name": "runner"})
    assert deployment.work_pool_name is None  # no worker will take its runs
    run = trigger(client, deployment)
    done = drive(runner, run.id)
    assert done.state_name == "Completed" and done.infrastructure_pid is not None
    names = [s.name for s in client.read_flow_run_states(run.id)]
    assert names == ["Scheduled", "Pending", "Running", "Completed"]


def test_a_runner_records_a_crash_and_a_cancel(client: Any, tmp_path: Path) -> None:
    runner = Runner()
    crashing = served(runner, "hard_exit")
    sleeping = served(runner, "sleepy")
    crashed = drive(runner, trigger(client, crashing, code=5).id)
    assert crashed.state_name == "Crashed" and "exit code 5" in (crashed.state.message or "")
    run = trigger(client, sleeping, seconds=60, marks=str(tmp_path))
    marker = tmp_path / f"started-{run.id}"
    wait_for(lambda: (runner.run_once(), marker.exists())[1], timeout=30)
    client.cancel_flow_run(run.id, message="enough")
    cancelled = drive(runner, run.id)
    assert cancelled.state_name == "Cancelled" and cancelled.state.message == "enough"


def test_runs_of_other_deployments_are_left_alone(client: Any) -> None:
    runner = Runner()
    served(runner, "hello")
    other = client.create_deployment("hello", "not-served", entrypoint=f"{FLOWS}:hello",
                                      path=str(REPO_ROOT))  # fmt: skip
    run = trigger(client, other)
    assert runner.run_once() == []
    assert read(run.id).state_name == "Scheduled"


def test_serve_rejects_what_it_cannot_serve() -> None:
    with pytest.raises(TypeError, match="not int"):
        serve(42)
    with pytest.raises(TypeError, match="at least one"):
        serve()


def test_flow_serve_in_a_script_serves_until_sigterm(client: Any, tmp_path: Path) -> None:
    script = REPO_ROOT / "tests" / "fixtures" / "served_flow.py"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=python_env({"PYTHONUNBUFFERED": "1"}),
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def registered() -> Any:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            found = client.read_deployments(flow_name="greet")
            return found[0] if found else None

        deployment = wait_for(registered, timeout=60, message="the script did not serve")
        assert deployment.name == "served-greet" and deployment.parameters == {"name": "served"}
        run = trigger(client, deployment)
        assert wait_final(run.id).state_name == "Completed"
        # Logs are shipped in batches apart from the state write: wait for the line.
        wait_for(
            lambda: any("hi served" in log.message for log in client.read_logs(run.id)),
            timeout=30,
            message="the served flow's print never reached the run's logs",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert client.read_deployment(deployment.id).paused  # pause_on_shutdown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
