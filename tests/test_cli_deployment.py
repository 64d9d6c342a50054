"""``prefect-lite deploy``, ``deployment ...``, ``init`` and ``scheduler start``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from prefect_lite.cli import cli
from prefect_lite.cli._errors import run_cli
from prefect_lite.client import get_client
from prefect_lite.schemas import Deployment, WorkPool
from prefect_lite.storage.records import NamedRecords
from tests.helpers import REPO_ROOT, python_env, wait_for

FLOWS = """
from prefect_lite import flow


@flow(name="etl")
def etl(day: str, retries: int = 3) -> str:
    return day


def plain():
    return 1
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "flows.py").write_text(FLOWS)
    monkeypatch.chdir(root)
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(cli, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def deployments() -> list[Deployment]:
    with get_client(sync_client=True) as client:
        return client.read_deployments()


def deploy_nightly(capsys: pytest.CaptureFixture[str], *extra: str) -> Deployment:
    code, out, err = run(
        capsys, "deploy", "flows.py:etl", "--name", "nightly", "--pool", "pool",
        "--cron", "30 2 * * *", "--timezone", "America/New_York", "--param", "day=monday",
        "--param", "retries=5", *extra,
    )  # fmt: skip
    assert code == 0, err
    assert "Deployment 'etl/nightly' registered" in out
    return deployments()[0]


def test_deploy_an_entrypoint(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = deploy_nightly(capsys, "--tag", "prod", "--overlap", "skip", "--catchup", "latest")
    assert record.full_name == "etl/nightly" and record.work_pool_name == "pool"
    assert record.parameters == {"day": "monday", "retries": 5}
    assert record.entrypoint == "flows.py:etl" and record.path == str(project)
    assert record.tags == ["prod"] and record.overlap == "skip"
    [schedule] = record.schedules
    assert (schedule.cron, schedule.timezone, schedule.catchup) == (
        "30 2 * * *", "America/New_York", "latest"
    )  # fmt: skip
    again = deploy_nightly(capsys)
    assert again.id == record.id and len(deployments()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py:etl"], "no such file"),
        (["flows.py:plain"], "'plain' in 'flows.py' is a function, not a flow"),
        (["flows.py:etl", "--cron", "0 0 * *"], "malformed cron expression '0 0 \\* \\*'"),
        (["flows.py:etl", "--cron", "0 0 * * *", "--timezone", "Moon/Base"],
         "unknown time zone 'Moon/Base'"),
        (["flows.py:etl", "--interval", "-5"], "interval must be a positive number"),
        (["flows.py:etl", "--rrule", "FREQ=EVERY"], "malformed rrule"),
        (["flows.py:etl", "--param", "dy=1"], "flow 'etl' has no parameter 'dy'"),
        (["flows.py:etl", "--param", "retries=lots"], "parameter 'retries' of flow 'etl'"),
        (["flows.py:etl", "--param", "oops"], "--param 'oops' must look like name=value"),
        (["flows.py:etl", "--params", "[1]"], "--params must be a JSON object"),
        (["flows.py:etl", "--cron", "* * * * *", "--interval", "5"], "at most one of"),
        (["flows.py:etl", "--anchor-date", "2024-01-01"], "--anchor-date goes with --interval"),
        (["flows.py:etl", "--interval", "5", "--anchor-date", "soon"], "not an ISO 8601"),
        (["flows.py:etl", "--jitter", "5"], "need a schedule"),
        (["flows.py:etl", "--pool", "ghost-pool"], "unknown work pool 'ghost-pool'"),
    ],
)  # fmt: skip
def test_deploy_bad_input_is_one_line_and_writes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    NamedRecords("work_pool", WorkPool).create("pool", WorkPool(name="pool"))
    base = ["deploy", *args[:1], "--name", "x"]
    if "--pool" not in args:
        base += ["--pool", "pool"]
    code, _out, err = run(capsys, *base, *args[1:])
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("Error: "), err
    assert __import__("re").search(message, err), err
    assert deployments() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy", "--name", "x", "--pool", "p"], "give an ENTRYPOINT"),
        (["deploy", "flows.py:etl", "--pool", "p"], "exactly one --name"),
        (["deploy", "flows.py:etl", "--name", "x"], "give the work pool with --pool"),
        (["deploy", "flows.py:etl", "--all"], "not both"),
        (["deploy", "--all"], "no prefect_lite.yaml here"),
    ],
)
def test_deploy_usage_errors(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _out, err = run(capsys, *args)
    assert code == 1 and message in err and err.count("\n") == 1


def test_one_line_error_from_the_real_command(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "prefect_lite", "deploy", "flows.py:etl", "--name", "x",
         "--pool", "p", "--cron", "61 * * * *"],
        env=python_env(), cwd=project, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "Error: malformed cron expression '61 * * * *'\n"


def test_deployment_ls_inspect_pause_resume_delete(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = deploy_nightly(capsys)
    code, out, _ = run(capsys, "deployment", "ls")
    assert code == 0 and "etl/nightly" in out and "30 2 * * *" in out
    code, out, _ = run(capsys, "deployment", "inspect", "etl/nightly", "--json")
    assert code == 0 and json.loads(out)["id"] == str(record.id)
    code, out, _ = run(capsys, "deployment", "inspect", str(record.id))
    assert code == 0 and "etl/nightly" in out
    assert (
        run(capsys, "deployment", "pause", "etl/nightly")[1] == "Paused deployment 'etl/nightly'.\n"
    )
    assert deployments()[0].paused
    assert run(capsys, "deployment", "resume", "etl/nightly")[0] == 0
    assert not deployments()[0].paused
    assert run(capsys, "deployment", "delete", "etl/nightly")[0] == 0
    assert deployments() == []
    code, _, err = run(capsys, "deployment", "inspect", "etl/nightly")
    assert code == 1 and err == "Error: no deployment named 'etl/nightly'\n"
    code, _, err = run(capsys, "deployment", "pause", "nightly")
    assert code == 1 and "expected 'flow-name/deployment-name'" in err


def test_schedule_ls_pause_resume(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deploy_nightly(capsys)
    code, out, _ = run(capsys, "deployment", "schedule", "ls", "etl/nightly")
    assert code == 0 and "Schedules of etl/nightly" in out and "yes" in out
    code, out, _ = run(capsys, "deployment", "schedule", "ls", "etl/nightly", "--json")
    assert [s["timezone"] for s in json.loads(out)] == ["America/New_York"]
    assert run(capsys, "deployment", "schedule", "pause", "etl/nightly", "1")[0] == 0
    assert not deployments()[0].schedules[0].active
    schedule_id = str(deployments()[0].schedules[0].id)
    assert run(capsys, "deployment", "schedule", "resume", "etl/nightly", schedule_id[:8])[0] == 0
    assert deployments()[0].schedules[0].active
    # Neither a position (one schedule) nor a prefix of a hex id, whatever id was drawn.
    code, _, err = run(capsys, "deployment", "schedule", "pause", "etl/nightly", "x7")
    assert code == 1 and "no schedule matching 'x7'" in err


def test_schedule_preview_shows_utc_and_local_and_creates_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], redis_client: redis.Redis
) -> None:
    deploy_nightly(capsys)
    keys_before = sorted(redis_client.keys("*"))
    code, out, _ = run(capsys, "deployment", "schedule", "preview", "etl/nightly", "--count", "3")
    assert code == 0
    assert out.count("America/New_York") >= 3
    assert " EST" in out or " EDT" in out
    code, out, _ = run(
        capsys, "deployment", "schedule", "preview", "etl/nightly", "-n", "2", "--json"
    )
    rows = json.loads(out)
    assert len(rows) == 2 and rows[0]["utc"].endswith("+00:00")
    assert rows[0]["local"].endswith(("-05:00", "-04:00"))
    assert sorted(redis_client.keys("*")) == keys_before


def test_deploy_all_and_init(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "init", "--name", "demo")
    assert code == 0 and "prefect_lite.yaml" in out
    code, _, err = run(capsys, "init")
    assert code == 1 and "already exists" in err
    (project / "prefect_lite.yaml").write_text(
        "deployments:\n"
        "  - name: a\n    entrypoint: flows.py:etl\n    parameters: {day: x}\n"
        "    schedules: [{interval: 60}]\n"
        "  - name: b\n    entrypoint: flows.py:etl\n"
    )
    code, out, err = run(capsys, "deploy", "--all", "--pool", "pool")
    assert code == 0, err
    assert [d.full_name for d in deployments()] == ["etl/a", "etl/b"]
    assert all(d.work_pool_name == "pool" for d in deployments())


def test_scheduler_start_runs_until_sigterm(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_nightly(capsys, "--cron", "* * * * *")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect_lite", "scheduler", "start", "--loop-seconds", "0.2"],
        env=python_env(), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        record = deployments()[0]

        def planned() -> bool:
            with get_client(sync_client=True) as client:
                return bool(client.read_flow_runs(deployment_id=record.id, limit=1))

        wait_for(planned, timeout=30, message="the scheduler planned no runs")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Scheduler started" in out and out.rstrip().endswith("Scheduler stopped.")
