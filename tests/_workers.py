"""Worker test helpers: deployments of the fixture flows, triggering runs, worker processes.

Workers and schedulers run as real ``python -m prefect_lite`` processes in their own
session (process group), so a test can kill one with everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect_lite import _time
from prefect_lite.client import get_client
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.orchestration import admission
from prefect_lite.schemas import Deployment, FlowRun
from prefect_lite.states import Scheduled
from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis
from tests.helpers import REPO_ROOT, pid_alive, python_env, wait_for

FLOWS = "tests/fixtures/worker_flows.py"


def deploy(function: str, pool: str = "pool", name: str | None = None, **fields: Any) -> Deployment:
    """A deployment of ``tests/fixtures/worker_flows.py:<function>``."""
    flow_name = function.replace("_", "-")
    with get_client(sync_client=True) as client:
        return client.create_deployment(
            flow_name,
            name or "test",
            entrypoint=f"{FLOWS}:{function}",
            path=str(REPO_ROOT),
            work_pool_name=pool,
            **fields,
        )


def trigger(deployment: Deployment, queue: str | None = None, **parameters: Any) -> FlowRun:
    """Create a run of the deployment due now and admit it (what triggering a deployment
    does); the run as created."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(
            deployment.flow_name,
            parameters={**deployment.parameters, **parameters},
            deployment_id=deployment.id,
            work_pool_name=deployment.work_pool_name,
            work_queue_name=queue or deployment.work_queue_name,
            state=Scheduled(scheduled_time=_time.now()),
        )
    admission.submit([str(run.id)])
    return run


def read(run_id: uuid.UUID | str) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(str(run_id)))


def state_name(run_id: uuid.UUID | str) -> str | None:
    return read(run_id).state_name


def wait_final(run_id: uuid.UUID | str, timeout: float = 30.0) -> FlowRun:
    def final() -> FlowRun | None:
        run = read(run_id)
        return run if run.state is not None and run.state.is_final() else None

    try:
        return wait_for(final, timeout=timeout, interval=0.02, message=f"run {run_id} did not end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(run_id)}") from None


def describe(run_id: uuid.UUID | str) -> str:
    """Where a run stands in the store: its state history and the sets that hold it (for
    the message of a test that waited on it in vain)."""
    rid = str(run_id)
    r = get_redis()
    run = read(rid)
    with get_client(sync_client=True) as client:
        states = [s.name for s in client.read_flow_run_states(run.id)]
    held = r.hget(keys.flow_run(rid), "slots") or ""
    sets = {
        "due": keys.scheduled_due(),
        "admitted": keys.scheduled_admitted(),
        "leases": keys.leases(),
        "waiting": keys.pool_waiting(run.work_pool_name or ""),
    }
    member_of = [name for name, key in sets.items() if r.zscore(key, rid) is not None]
    slot_sets = {
        key: sorted(str(m) for m in r.zrange(key, 0, -1))
        for key in r.scan_iter(match=f"{keys.prefix()}:slot:*")
    }
    return (
        f"run {rid}: state {run.state_name}, history {states}, deployment "
        f"{run.deployment_id}, queue {run.work_queue_name}, worker {run.worker_name}, "
        f"parameters {run.parameters}; in {member_of}; holds slots [{held}]; "
        f"slot sets {slot_sets}"
    )


def wait_state(run_id: uuid.UUID | str, *names: str, timeout: float = 30.0) -> FlowRun:
    def reached() -> FlowRun | None:
        run = read(run_id)
        return run if run.state_name in names else None

    return wait_for(reached, timeout=timeout, interval=0.02, message=f"run {run_id} not {names}")


class Proc:
    """A ``prefect-lite`` command running in its own session; output in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str | None] | None = None):
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect_lite", *args],
            env=python_env({"PYTHONUNBUFFERED": "1", **(env or {})}),
            cwd=REPO_ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text()

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signum)

    def kill_group(self) -> None:
        """kill -9 the process and everything it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_group()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left behind
        self._out.close()


def group_members(pgid: int) -> list[int]:
    """Live pids in a process group (Linux)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def worker_process(
    tmp: Path, pool: str = "pool", *extra: str, name: str | None = None, **env: str
) -> Iterator[Proc]:
    """A worker on ``pool``, registered (ONLINE) before the block starts."""
    worker_name = name or f"w-{uuid.uuid4().hex[:6]}"
    args = ["worker", "start", "--pool", pool, "--name", worker_name, *extra]
    proc = Proc(args, tmp / f"{worker_name}.log", env=dict(env))

    def online() -> bool:
        assert proc.proc.poll() is None, f"worker exited early:\n{proc.output()}"
        with get_client(sync_client=True) as client:
            try:
                return any(w.name == worker_name for w in client.read_workers(pool))
            except ObjectNotFound:  # a worker creates its missing pool as it starts
                return False

    try:
        wait_for(online, timeout=30, message="the worker did not register")
        yield proc
    except BaseException:
        print(f"--- worker {worker_name} log (tail) ---\n{proc.output()[-4000:]}")
        raise
    finally:
        proc.stop()


@contextlib.contextmanager
def scheduler_process(tmp: Path, **env: str) -> Iterator[Proc]:
    proc = Proc(["scheduler", "start", "--loop-seconds", "0.2"], tmp / "scheduler.log", dict(env))
    try:
        yield proc
    finally:
        proc.stop()
