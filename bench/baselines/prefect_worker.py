"""Baseline: bench_worker's measurements for Prefect's process worker, default settings.

``prefect server start`` (its own port, SQLite under a temporary PREFECT_HOME) and
``prefect worker start --pool bench --type process`` processes; the same flows
(``worker_probe.flow_source("prefect")``, deployed from a local directory), the same UDP
probe for "the flow body started". Triggering is ``create_flow_run_from_deployment``.

Prefect's worker polls for scheduled runs every ``PREFECT_WORKER_QUERY_SECONDS`` (10 s by
default) and starts a new Python process per run, so its samples take seconds each: the
counts are smaller than ours (``--samples``, ``--runs``, ``--trials``). A killed worker's
run is watched for at most ``CRASH_WATCH_SECONDS``; with default settings Prefect does not
detect it (no flow run heartbeats), which is reported in ``notes``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
from worker_probe import (
    Probe,
    descendants_of,
    process_pss_mb,
    process_rss_mb,
    wait_until,
    write_flows,
)

POOL = "bench"
CRASH_WATCH_SECONDS = 120.0
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class Setup:
    def __init__(self, probe: Probe) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-prefect-worker-"))
        port = _free_port()
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(self.dir / "home"),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "BENCH_UDP_PORT": str(probe.port),
        }
        os.environ.update(self.env)
        self.log = self.dir / "processes.log"
        args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
        self.server = _spawn([*args, "--port", str(port), "--no-ui"], self.env, self.log)
        self.workers: list[subprocess.Popen[bytes]] = []
        from prefect.client.orchestration import get_client

        self.client: Any = get_client(sync_client=True)
        self.client.__enter__()
        if wait_until(self._healthy, 180, 0.5) is None:
            raise RuntimeError(f"prefect server did not start:\n{self.log.read_text()[-2000:]}")

    def _healthy(self) -> bool:
        try:
            return self.client.api_healthcheck() is None
        except Exception:
            return False

    def deploy(self) -> tuple[Any, Any]:
        from prefect import flow
        from prefect.client.schemas.actions import WorkPoolCreate

        self.client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        write_flows(self.dir, "prefect")
        ids = []
        for name in ("bench_quick", "bench_sleep"):
            source = flow.from_source(str(self.dir), f"bench_flows.py:{name}")
            ids.append(source.deploy("bench", work_pool_name=POOL, print_next_steps=False))
        return ids[0], ids[1]

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        args = [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"]
        proc = _spawn([*args, "--name", name], self.env, self.log)

        def online() -> bool:
            workers = self.client.read_workers_for_work_pool(POOL)
            return any(w.name == name for w in workers)

        if wait_until(online, 120, 0.5) is None:
            raise RuntimeError(f"prefect worker did not start:\n{self.log.read_text()[-2000:]}")
        self.workers.append(proc)
        return proc

    def trigger(self, deployment_id: Any, tag: str, **parameters: Any) -> Any:
        return self.client.create_flow_run_from_deployment(
            deployment_id, parameters={"tag": tag, **parameters}
        )

    def state(self, run_id: Any) -> str | None:
        run = self.client.read_flow_run(run_id)
        return run.state.type.value if run.state else None

    def close(self) -> None:
        for worker in self.workers:
            _stop(worker)
        self.client.__exit__(None, None, None)
        _stop(self.server)


def latency(setup: Setup, probe: Probe, quick: Any, samples: int) -> dict[str, Any]:
    worker = setup.start_worker("latency")
    delays = []
    for i in range(samples + 1):
        began = time.time()
        run = setup.trigger(quick, f"lat-{i}")
        body = probe.wait(f"lat-{i}", timeout=120)
        if i >= 1:
            delays.append((body - began) * 1e6)
        wait_until(lambda run=run: setup.state(run.id) == "COMPLETED", 120, 0.2)
    time.sleep(2.0)
    tree = [worker.pid, *descendants_of(worker.pid)]
    figures = {
        "stats": harness.Stats.from_samples(delays),
        "rss_mb": process_rss_mb(worker.pid),
        "pss_mb": sum(process_pss_mb(pid) for pid in tree),
        "processes": len(tree),
    }
    _stop(worker)
    setup.workers.remove(worker)
    return figures


def throughput(setup: Setup, quick: Any, runs: int) -> float:
    workers = [setup.start_worker(f"tp-{i}") for i in range(2)]
    began = time.monotonic()
    made = [setup.trigger(quick, f"tp-{i}") for i in range(runs)]
    for run in made:
        if wait_until(lambda run=run: setup.state(run.id) == "COMPLETED", 600, 0.2) is None:
            raise RuntimeError("a throughput run did not complete")
    elapsed = time.monotonic() - began
    for worker in workers:
        _stop(worker)
        setup.workers.remove(worker)
    return runs / elapsed


def cancel_times(setup: Setup, probe: Probe, sleep: Any, trials: int) -> list[float]:
    from prefect.states import Cancelling

    worker = setup.start_worker("cancel")
    times = []
    for i in range(trials):
        run = setup.trigger(sleep, f"cancel-{i}")
        probe.wait(f"cancel-{i}", timeout=120)
        asked = time.monotonic()
        setup.client.set_flow_run_state(run.id, Cancelling())
        ended = wait_until(lambda run=run: setup.state(run.id) == "CANCELLED", 120, 0.05)
        if ended is not None:
            times.append((ended - asked) * 1e6)
    _stop(worker)
    setup.workers.remove(worker)
    return times


def crash_time(setup: Setup, probe: Probe, sleep: Any) -> float | None:
    worker = setup.start_worker("doomed")
    run = setup.trigger(sleep, "crash-0")
    probe.wait("crash-0", timeout=120)
    os.killpg(worker.pid, signal.SIGKILL)
    killed = time.monotonic()
    worker.wait()
    setup.workers.remove(worker)
    ended = wait_until(
        lambda: setup.state(run.id) in ("CRASHED", "FAILED"), CRASH_WATCH_SECONDS, 0.5
    )
    with contextlib.suppress(ProcessLookupError):  # the flow's process outlived its worker
        os.kill(probe.pids["crash-0"], signal.SIGKILL)
    return None if ended is None else (ended - killed) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--trials", type=int, default=5)
    options = parser.parse_args()
    probe = Probe()
    setup = Setup(probe)
    notes = []
    try:
        quick, sleep = setup.deploy()
        result = latency(setup, probe, quick, options.samples)
        result["throughput"] = throughput(setup, quick, options.runs)
        cancels = cancel_times(setup, probe, sleep, options.trials)
        result["cancel"] = harness.Stats.from_samples(cancels) if cancels else None
        if len(cancels) < options.trials:
            notes.append(f"{options.trials - len(cancels)} cancel trial(s) timed out (120 s)")
        crash = crash_time(setup, probe, sleep)
        result["crash"] = harness.Stats.from_samples([crash]) if crash is not None else None
        if crash is None:
            notes.append(
                f"a killed worker's run was not marked CRASHED within {CRASH_WATCH_SECONDS:g} s"
            )
        result["notes"] = notes
    finally:
        setup.close()
        probe.close()
    harness.emit(result)


if __name__ == "__main__":
    main()
