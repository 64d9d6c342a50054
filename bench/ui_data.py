"""Data and plumbing for the UI screenshots (``bench/ui_screenshots.py``) and the UI bench
(``bench/bench_ui.py``): a private redis-server, the app served on a loopback port, and
a store seeded the way a working installation looks (runs in every state, deployments
with schedules and parameter schemas, pools with workers, a paused run that waits for
input, variables and a block with a secret)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn

from prefect_lite import _time
from prefect_lite.api.blocks import create_block_document
from prefect_lite.api.deployments import create_deployment
from prefect_lite.api.flow_run_inputs import create_flow_run_input
from prefect_lite.api.flow_runs import create_flow_run, set_flow_run_state
from prefect_lite.api.logs import create_logs
from prefect_lite.api.variables import create_variable
from prefect_lite.api.work_pools import create_work_pool, create_work_queue
from prefect_lite.schemas import BlockDocument, FlowRun, Log, TaskRun, Worker
from prefect_lite.server import create_app
from prefect_lite.server.runner import bind_socket
from prefect_lite.settings import Settings, reload_settings
from prefect_lite.states import (
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Paused,
    Pending,
    Running,
    Scheduled,
    State,
)
from prefect_lite.storage import connection, pools, runs
from prefect_lite.storage.embedded import find_redis_server

CHROMIUM = os.environ.get("PREFECT_LITE_CHROMIUM") or shutil.which("chromium") or "chromium"
SCHEMA = {
    "type": "object",
    "title": "Parameters",
    "properties": {
        "source": {"type": "string", "title": "source", "description": "Where to read from"},
        "batch_size": {"type": "integer", "title": "batch_size", "default": 500},
        "ratio": {"type": "number", "title": "ratio"},
        "full_refresh": {"type": "boolean", "title": "full_refresh", "default": False},
        "mode": {"enum": ["append", "replace"], "title": "mode"},
        "since": {"type": "string", "format": "date", "title": "since"},
        "tables": {"type": "array", "items": {"type": "string"}, "title": "tables"},
    },
    "required": ["source"],
}


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; the process's settings use it."""
    workdir = Path(tempfile.mkdtemp(prefix="prefect-lite-ui-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            find_redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    os.environ["PREFECT_LITE_REDIS_URL"] = url
    os.environ["PREFECT_LITE_HOME"] = str(workdir)
    reload_settings()
    connection.reset_connections()
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def served(settings: Settings | None = None) -> Iterator[str]:
    """The app on 127.0.0.1:<free port> in a thread; yields the base URL."""
    sock = bind_socket("127.0.0.1", 0)
    app = create_app(settings or Settings(api_key=None))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def _set(run: FlowRun, *states: State) -> None:
    for state in states:
        runs.propose("flow", run.id, runs.Proposal(state=state, force=True))


def task_runs(run: FlowRun, count: int, names: int = 5, started: float | None = None) -> None:
    """``count`` task runs of ``run`` over ``names`` tasks, staggered in time."""
    t0 = started or _time.timestamp() - 120
    batch = runs.RunBatch()
    for i in range(count):
        name = ["extract", "clean", "load", "validate", "notify", "score", "rank"][i % names]
        task = TaskRun(
            name=f"{name}-{i}",
            flow_run_id=run.id,
            task_key=f"etl.{name}",
            dynamic_key=str(i),
            expected_start_time=_time.from_timestamp(t0 + i * 0.4),
        )
        batch.create("task", task, Running())
        end = Failed() if i % 17 == 5 else Completed()
        batch.propose("task", task.id, runs.Proposal(state=end, force=True))
        if len(batch) > 2000:
            batch.execute()
    batch.execute()


def seed_demo() -> dict[str, Any]:
    """A small, varied installation; returns ids the screenshots open."""
    create_work_pool("default-pool", concurrency_limit=4)
    create_work_queue("default-pool", "critical", priority=1, concurrency_limit=2)
    create_work_pool("gpu", paused=True)
    now = _time.now()
    for name, pool, status, ago in (
        ("worker-a", "default-pool", "ONLINE", 3),
        ("worker-b", "default-pool", "ONLINE", 8),
        ("gpu-1", "gpu", "OFFLINE", 900),
    ):
        pools.save_worker(
            Worker(
                name=name,
                work_pool_name=pool,
                host="node-1",
                pid=4242,
                status=status,
                last_heartbeat_time=now - timedelta(seconds=ago),
                running=1 if status == "ONLINE" else 0,
            )
        )
    etl = create_deployment(
        "etl",
        "nightly",
        entrypoint="flows/etl.py:etl",
        path="/srv/flows",
        work_pool_name="default-pool",
        parameter_openapi_schema=SCHEMA,
        parameters={"source": "s3://bucket/raw", "batch_size": 1000},
        tags=["prod", "etl"],
        description="Nightly load of the warehouse.",
        schedules=[{"cron": "30 1 * * *", "timezone": "Europe/Berlin"}],  # type: ignore[list-item]
    )
    report = create_deployment(
        "report",
        "hourly",
        entrypoint="flows/report.py:report",
        work_pool_name="default-pool",
        schedules=[{"interval": 3600}],
        tags=["prod"],  # type: ignore[list-item]
    )
    create_deployment(
        "train",
        "weekly",
        entrypoint="ml/train.py:train",
        work_pool_name="gpu",
        schedules=[{"cron": "0 3 * * 1", "timezone": "America/New_York"}],
    )  # type: ignore[list-item]
    ids: dict[str, Any] = {"etl": etl.id, "report": report.id}
    cycle = [
        Completed(),
        Completed(),
        Failed(message="ValueError: bad row 17"),
        Completed(),
        Crashed(message="worker lost"),
        Cancelled(),
    ]
    for i in range(60):
        dep = etl if i % 2 else report
        run = create_flow_run(
            dep.flow_name,
            deployment_id=dep.id,
            state=Pending(),
            work_pool_name="default-pool",
            tags=list(dep.tags),
            expected_start_time=now - timedelta(minutes=37 * i),
        )
        _set(run, Running(), cycle[i % len(cycle)])
    ids.update(_special_runs(etl.id, report.id))
    create_variable("warehouse_dsn_name", value="analytics", tags=["prod"])
    create_variable("retry_policy", value={"retries": 3, "delay": [1, 10, 60]})
    create_block_document(
        BlockDocument(
            name="warehouse",
            block_type_slug="database-credentials",
            data={"user": "loader", "password": "never-shown-s3cret", "host": "db.internal"},
            block_schema={"secret_fields": ["password"]},
        )
    )
    return ids


def _special_runs(etl_id: uuid.UUID, report_id: uuid.UUID) -> dict[str, Any]:
    now = _time.now()
    live = create_flow_run(
        "etl",
        deployment_id=etl_id,
        work_pool_name="default-pool",
        name="brisk-otter",
        tags=["prod"],
        parameters={"source": "s3://b"},
        state=Pending(),
    )
    _set(live, Running())
    task_runs(live, 24)
    create_logs(
        [
            Log(
                name="prefect.flow_runs",
                level=lvl,
                message=msg,
                flow_run_id=live.id,
                timestamp=now - timedelta(seconds=30 - i),
            )
            for i, (lvl, msg) in enumerate(
                [
                    (20, "Beginning flow run 'brisk-otter'"),
                    (10, "reading 3 partitions"),
                    (20, "extracted 120,000 rows"),
                    (30, "2 rows skipped: bad encoding"),
                    (20, "loading"),
                ]
            )
        ]
    )
    failed = create_flow_run(
        "etl",
        deployment_id=etl_id,
        name="grumpy-heron",
        state=Pending(),
        work_pool_name="default-pool",
    )
    _set(failed, Running(), Failed(message="Flow run encountered an exception: KeyError: 'id'"))
    create_logs(
        [
            Log(
                name="prefect.flow_runs",
                level=40,
                flow_run_id=failed.id,
                message=(
                    "Encountered exception during execution:\nTraceback (most recent call last):\n"
                    '  File "flows/etl.py", line 42, in etl\n    key = row["id"]\nKeyError: \'id\''
                ),
            )
        ]
    )
    big = create_flow_run("etl", deployment_id=etl_id, name="vast-meadow", state=Pending())
    _set(big, Running(), Completed())
    task_runs(big, 800, names=7)
    waiting = create_flow_run(
        "report",
        deployment_id=report_id,
        name="patient-lynx",
        work_pool_name="gpu",
        work_queue_name="default",
        state=Scheduled(scheduled_time=now - timedelta(minutes=5)),
    )
    paused = create_flow_run("etl", deployment_id=etl_id, name="quiet-falcon", state=Pending())
    _set(paused, Running())
    base = "paused-approval"
    create_flow_run_input(
        paused.id,
        f"{base}-schema",
        value={
            "title": "Approval",
            "type": "object",
            "properties": {
                "approved": {"title": "Approved", "type": "boolean"},
                "note": {"title": "Note", "type": "string"},
            },
            "required": ["approved", "note"],
        },
    )
    keyset = {k: f"{base}-{k}" for k in ("description", "response", "schema")}
    set_flow_run_state(
        paused.id,
        Paused(timeout_seconds=3600, pause_key="approval", run_input_keyset=keyset),
        force=True,
    )
    return {
        "live": live.id,
        "failed": failed.id,
        "big": big.id,
        "waiting": waiting.id,
        "paused": paused.id,
    }
