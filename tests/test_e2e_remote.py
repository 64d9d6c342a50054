"""Remote triggering end to end, with real processes.

Each test starts ``prefect-lite server start`` (API + in-process scheduler) and a
``prefect-lite worker start`` process on pool ``e2e``. The client side - this test
process and the CLI subprocesses - knows only the API URL (and key): its
``PREFECT_LITE_REDIS_URL`` points at a closed port, so anything that bypassed the API
would fail. Every process is stopped in the fixture's teardown (SIGTERM, waited for; its
whole process group killed if it lingers). The server uses the session's Redis, except
with auth on, where it starts its embedded Redis under a temporary home and must stop it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_lite import _time
from prefect_lite.client import get_client
from prefect_lite.deployments import run_deployment
from prefect_lite.exceptions import AuthenticationError
from prefect_lite.schemas import FlowRun
from prefect_lite.settings import temporary_settings
from prefect_lite.states import StateType
from tests._workers import Proc
from tests.helpers import REPO_ROOT, kill_redis_servers_under, python_env, wait_for

POOL = "e2e"
FLOWS = "tests/fixtures/remote_flows.py"
NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there: the client side must not need Redis
START_TIMEOUT = 60.0
RUN_TIMEOUT = 60.0


@dataclass
class Stack:
    """A running server and worker, and how a remote client reaches them."""

    api_url: str
    api_key: str | None
    server: Proc
    worker: Proc

    def env(self, api_key: str | None = None) -> dict[str, str | None]:
        return {
            "PREFECT_LITE_API_URL": self.api_url,
            "PREFECT_LITE_API_KEY": api_key or self.api_key,
            "PREFECT_LITE_REDIS_URL": NO_REDIS,
        }

    def cli(self, *args: str, api_key: str | None = None) -> subprocess.CompletedProcess[str]:
        """A ``prefect-lite`` command run as a remote client."""
        return subprocess.run(
            [sys.executable, "-m", "prefect_lite", *args],
            env=python_env(self.env(api_key)),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT + 30,
            check=False,
        )

    @contextlib.contextmanager
    def remote(self, api_key: str | None = None) -> Iterator[None]:
        """This process as a remote client."""
        key = api_key or self.api_key
        with temporary_settings(api_url=self.api_url, api_key=key, redis_url=NO_REDIS):
            yield

    def logs(self) -> str:
        return f"--- server ---\n{self.server.output()}\n--- worker ---\n{self.worker.output()}"


def _api_url(server: Proc) -> str | None:
    assert server.proc.poll() is None, f"the server exited:\n{server.output()}"
    for line in server.output().splitlines():
        if "export PREFECT_LITE_API_URL=" in line:
            return line.split("=", 1)[1].strip()
    return None


@contextlib.contextmanager
def running_stack(
    tmp: Path, api_key: str | None = None, home: Path | None = None
) -> Iterator[Stack]:
    """Server (then pool, then worker); torn down worker first, then the server."""
    env: dict[str, str | None] = {"PREFECT_LITE_API_KEY": api_key}
    if home is not None:  # the server's embedded Redis, which the worker then finds too
        env.update(PREFECT_LITE_REDIS_URL=None, PREFECT_LITE_HOME=str(home))
    server = Proc(["server", "start", "--port", "0"], tmp / "server.log", env)
    worker: Proc | None = None
    try:
        url = str(wait_for(lambda: _api_url(server), timeout=START_TIMEOUT, message="start"))
        made = subprocess.run(
            [sys.executable, "-m", "prefect_lite", "work-pool", "create", POOL],
            env=python_env({"PREFECT_LITE_API_URL": url, "PREFECT_LITE_API_KEY": api_key,
                            "PREFECT_LITE_REDIS_URL": NO_REDIS}),
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        worker_args = ["worker", "start", "--pool", POOL, "--name", "e2e-worker"]
        worker = Proc(worker_args, tmp / "worker.log", env)
        stack = Stack(url, api_key, server, worker)

        def online() -> bool:
            assert worker.proc.poll() is None, f"the worker exited:\n{worker.output()}"
            with stack.remote(), get_client(sync_client=True) as client:
                return any(w.name == "e2e-worker" for w in client.read_workers(POOL))

        wait_for(online, timeout=START_TIMEOUT, interval=0.05, message="worker registration")
        yield stack
    finally:
        if worker is not None:
            worker.stop()
            assert worker.proc.returncode is not None
        server.stop()
        assert server.proc.returncode is not None
        if home is not None:
            orphans = kill_redis_servers_under(home)
            assert not orphans, f"the server left its embedded Redis running: {orphans}"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Auth off; the session's Redis."""
    with running_stack(tmp_path) as running:
        yield running


@pytest.fixture
def secured_stack(tmp_path: Path) -> Iterator[Stack]:
    """Auth on; the server's embedded Redis under a temporary home."""
    with running_stack(tmp_path, api_key="e2e-s3cret", home=tmp_path / "server-home") as running:
        yield running


def _deploy(stack: Stack, function: str, api_key: str | None = None) -> None:
    done = stack.cli(
        "deploy", f"{FLOWS}:{function}", "--name", "e2e", "--pool", POOL, api_key=api_key
    )
    assert done.returncode == 0, done.stderr


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _messages_with(run: FlowRun, wanted: str) -> list[str] | None:
    """The run's log messages once ``wanted`` is among them."""
    with get_client(sync_client=True) as client:
        found = [log.message for log in client.read_logs(run.id)]
    return found if wanted in found else None


# ------------------------------------------------------------------------------------ tests


def test_deploy_trigger_with_parameters_watch_and_read_logs_over_http(stack: Stack) -> None:
    _deploy(stack, "greet")
    with stack.remote():
        run = run_deployment("greet/e2e", parameters={"name": "remote", "times": 2}, timeout=60)
        assert run.state_type is StateType.COMPLETED, stack.logs()
        assert run.parameters == {"name": "remote", "times": 2}
        assert run.work_pool_name == POOL and run.run_count == 1
        messages = wait_for(
            lambda: _messages_with(run, "Hello remote! Hello remote!"),
            message="the flow's log line did not arrive",
        )
        assert messages and any(m.startswith("Beginning flow run") for m in messages)

    watched = stack.cli("deployment", "run", "greet/e2e", "--param", "name=cli", "--watch")
    assert watched.returncode == 0, watched.stderr + stack.logs()
    states = [line.split(" | ")[2] for line in watched.stdout.splitlines() if "| State" in line]
    assert states == ["Scheduled", "Pending", "Running", "Completed"]
    assert "Hello cli!" in watched.stdout
    assert "finished: Completed" in watched.stdout

    logs = stack.cli("flow-run", "logs", str(run.id))
    assert logs.returncode == 0 and "Hello remote! Hello remote!" in logs.stdout


def test_the_same_idempotency_key_gives_the_same_run(stack: Stack) -> None:
    _deploy(stack, "greet")
    first = stack.cli("deployment", "run", "greet/e2e", "--idempotency-key", "run-1")
    again = stack.cli("deployment", "run", "greet/e2e", "--idempotency-key", "run-1")
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    run_id = first.stdout.strip().splitlines()[-1]
    assert again.stdout.strip().splitlines()[-1] == run_id
    with stack.remote():
        same = run_deployment("greet/e2e", idempotency_key="run-1", timeout=60)
        other = run_deployment("greet/e2e", idempotency_key="run-2", timeout=60)
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_name="greet")
    assert str(same.id) == run_id and other.id != same.id
    assert same.state_type is other.state_type is StateType.COMPLETED
    assert len(runs) == 2


def test_a_run_scheduled_for_later_is_delivered_by_the_servers_scheduler(stack: Stack) -> None:
    _deploy(stack, "greet")
    with stack.remote():
        when = _time.now() + timedelta(seconds=1)
        run = run_deployment("greet/e2e", parameters={"name": "later"}, scheduled_time=when)
    assert run.state_type is StateType.COMPLETED, stack.logs()
    assert run.start_time is not None and run.start_time >= when


def test_failures_and_bad_input_are_one_clear_line(stack: Stack) -> None:
    _deploy(stack, "greet")
    _deploy(stack, "explode")
    failed = stack.cli("deployment", "run", "explode/e2e", "-p", "reason=kaboom", "--watch")
    assert "ended Failed" in _one_error_line(failed)
    assert "about to fail: kaboom" in failed.stdout

    cases = {
        ("greet/e2e", "-p", "nope=1"): "flow 'greet' has no parameter 'nope'",
        ("greet/e2e", "-p", "times=many"): "parameter 'times' of flow 'greet' must be an integer",
        ("greet/missing",): "no deployment named 'greet/missing'",
        (str(uuid.UUID(int=5)),): "no deployment with id",
    }
    for args, expected in cases.items():
        assert expected in _one_error_line(stack.cli("deployment", "run", *args))

    with httpx.Client(base_url=stack.api_url) as http:
        deployment = http.get("/deployments/name/greet/e2e").json()
        bad = http.post(
            f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": {"times": "x"}}
        )
    assert bad.status_code == 422
    assert "parameter 'times' of flow 'greet' must be an integer" in bad.json()["detail"]
    with stack.remote(), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_name="greet")
    assert runs == []


def test_auth_on_runs_with_the_key_and_refuses_a_wrong_one(secured_stack: Stack) -> None:
    stack = secured_stack
    _deploy(stack, "greet")
    with stack.remote():
        run = run_deployment("greet/e2e", parameters={"name": "secure"}, timeout=60)
    assert run.state_type is StateType.COMPLETED, stack.logs()

    wrong = stack.cli("deployment", "run", "greet/e2e", api_key="not-the-key")
    assert "invalid API key" in _one_error_line(wrong)
    missing = subprocess.run(
        [sys.executable, "-m", "prefect_lite", "deployment", "run", "greet/e2e"],
        env=python_env({**stack.env(), "PREFECT_LITE_API_KEY": None}),
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "missing API key" in _one_error_line(missing)
    with stack.remote(api_key="not-the-key"), pytest.raises(AuthenticationError):
        run_deployment("greet/e2e", timeout=0)
    with stack.remote(), get_client(sync_client=True) as client:
        runs: list[Any] = client.read_flow_runs(flow_name="greet")
    assert [r.id for r in runs] == [run.id]
