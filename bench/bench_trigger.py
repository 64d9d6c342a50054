"""Remote triggering through the HTTP API: trigger p50, and trigger -> flow body start.

prefect_lite runs as a user runs it: ``prefect-lite server start`` (API and in-process
scheduler, its embedded Redis under a temporary home) and one ``prefect-lite worker
start --pool bench`` process; this process is the remote client and knows only the API
URL.

- ``create_flow_run_from_deployment p50 (HTTP)``: ``POST /api/deployments/{id}/create_flow_run``
  one at a time over a keep-alive httpx connection, for a deployment in a pool that no
  worker serves (so the runs only pile up): parameter check, run creation, admission to
  the pool queue. Also the by-name route, and ``run_deployment(..., timeout=0)`` (the SDK
  call, through the HTTP client).
- ``trigger -> flow body start``: with the worker idle, from just before the POST to the
  moment a UDP datagram sent by the flow body's first line arrives here (one clock: this
  process's). Each sample then follows its run to the end with the run-change long poll
  and leaves the worker idle for a moment before the next one.

Baseline: Prefect's own figures for the same two steps are not measured here; the worker
benchmark (``bench_worker.py``) compares trigger -> start against Prefect's process worker.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import harness

POOL = "bench"
IDLE_POOL = "bench-idle"
START_TIMEOUT = 120.0
FLOW = """
import socket

from prefect_lite import flow


@flow
def probe(tag: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.sendto(tag.encode(), ("127.0.0.1", port))
"""


class Proc:
    """A ``prefect-lite`` command in its own process group, output to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect_lite", *args],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._out.close()


def _wait(predicate: Any, what: str, timeout: float = START_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def stack(workdir: Path) -> Iterator[tuple[str, Proc]]:
    """Server (embedded Redis under ``workdir``) and one worker; yields the API URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LITE_")}
    env.update(
        PREFECT_LITE_HOME=str(workdir / "home"),
        PREFECT_LITE_LOGGING_LEVEL="WARNING",
        PYTHONPATH=str(harness.REPO_DIR),
        PYTHONUNBUFFERED="1",
    )
    server = Proc(["server", "start", "--port", "0"], env, workdir / "server.log")
    worker: Proc | None = None
    try:

        def api_url() -> str | None:
            if server.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{server.output()}")
            for line in server.output().splitlines():
                if "export PREFECT_LITE_API_URL=" in line:
                    return line.split("=", 1)[1].strip()
            return None

        url = str(_wait(api_url, "server start"))
        with httpx.Client(base_url=url) as http:
            for pool in (POOL, IDLE_POOL):
                http.post("/work_pools/", json={"name": pool}).raise_for_status()
            worker = Proc(["worker", "start", "--pool", POOL], env, workdir / "worker.log")

            def online() -> bool:
                if worker is not None and worker.proc.poll() is not None:
                    raise RuntimeError(f"the worker exited:\n{worker.output()}")
                found = http.post("/workers/filter", json={"work_pool_name": POOL})
                return bool(found.raise_for_status().json())

            _wait(online, "worker registration")
        yield url, worker
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


def deploy(http: httpx.Client, flows_dir: Path, pool: str, name: str) -> str:
    body = {
        "flow_name": "probe",
        "name": name,
        "entrypoint": "bench_trigger_flows.py:probe",
        "path": str(flows_dir),
        "work_pool_name": pool,
        "parameter_openapi_schema": {
            "type": "object",
            "properties": {"tag": {"type": "string"}, "port": {"type": "integer"}},
            "required": ["tag", "port"],
        },
    }
    return str(http.post("/deployments/", json=body).raise_for_status().json()["id"])


def trigger_p50(url: str, deployment_id: str, repeat: int) -> dict[str, harness.Stats]:
    from prefect_lite.deployments.flow_runs import run_deployment
    from prefect_lite.settings import temporary_settings

    params = {"parameters": {"tag": "idle", "port": 9}}
    figures: dict[str, harness.Stats] = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        path = f"/deployments/{deployment_id}/create_flow_run"
        figures["by_id"] = harness.measure(
            lambda: http.post(path, json=params).raise_for_status(), repeat=repeat
        )
        by_name = f"/deployments/name/probe/{IDLE_POOL}/create_flow_run"
        figures["by_name"] = harness.measure(
            lambda: http.post(by_name, json=params).raise_for_status(), repeat=repeat
        )
    with temporary_settings(api_url=url, redis_url="redis://127.0.0.1:1/0"):
        figures["sdk"] = harness.measure(
            lambda: run_deployment(f"probe/{IDLE_POOL}", parameters=params["parameters"],
                                   timeout=0),
            repeat=repeat,
        )  # fmt: skip
    return figures


def trigger_to_start(url: str, deployment_id: str, samples: int, gap: float) -> harness.Stats:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe.settimeout(60)
        port = int(probe.getsockname()[1])
        latencies: list[float] = []
        with httpx.Client(base_url=url, timeout=30) as http:
            path = f"/deployments/{deployment_id}/create_flow_run"
            for i in range(samples + 2):  # the first two warm the worker's children
                tag = f"run-{i}"
                began = time.perf_counter()
                run = http.post(path, json={"parameters": {"tag": tag, "port": port}})
                run.raise_for_status()
                while probe.recv(256).decode() != tag:
                    pass
                if i >= 2:
                    latencies.append((time.perf_counter() - began) * 1e6)
                _follow_to_end(http, run.json())
                time.sleep(gap)  # the worker idle again, as a user would find it
    return harness.Stats.from_samples(latencies)


def _follow_to_end(http: httpx.Client, run: dict[str, Any]) -> None:
    final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
    while run["state"]["type"] not in final:
        answer = http.post(
            f"/flow_runs/{run['id']}/wait", json={"version": run["version"], "timeout": 10}
        )
        run = answer.raise_for_status().json()
    if run["state"]["type"] != "COMPLETED":
        raise RuntimeError(f"probe run ended {run['state']['name']}: {run['state']['message']}")


def _row(name: str, value: float, unit: str = "ms", **extra: Any) -> harness.Row:
    return {"name": name, "prefect_lite": value, "baseline": None, "unit": unit, **extra}


def main(argv: list[str] | None = None) -> list[harness.Row]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=300, help="trigger calls per route")
    parser.add_argument("--samples", type=int, default=30, help="trigger -> start samples")
    parser.add_argument("--gap", type=float, default=0.3, help="idle seconds between samples")
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory(prefix="bench-trigger-") as tmp:
        workdir = Path(tmp)
        flows = workdir / "flows"
        flows.mkdir()
        (flows / "bench_trigger_flows.py").write_text(FLOW)
        with stack(workdir) as (url, _worker), httpx.Client(base_url=url) as http:
            busy = deploy(http, flows, POOL, POOL)
            idle = deploy(http, flows, IDLE_POOL, IDLE_POOL)
            p50 = trigger_p50(url, idle, args.repeat)
            start = trigger_to_start(url, busy, args.samples, args.gap)
    ms = 1000.0
    return [
        _row("create_flow_run_from_deployment p50 (HTTP)", p50["by_id"].p50_us / ms,
             p90=p50["by_id"].p90_us / ms),
        _row("create_flow_run_from_deployment_name p50 (HTTP)", p50["by_name"].p50_us / ms),
        _row("run_deployment(timeout=0) p50 (SDK over HTTP)", p50["sdk"].p50_us / ms),
        _row("trigger -> flow body start p50 (idle worker)", start.p50_us / ms,
             p90=start.p90_us / ms, max=start.p99_us / ms, samples=start.n),
        _row("trigger -> flow body start p90 (idle worker)", start.p90_us / ms),
    ]  # fmt: skip


if __name__ == "__main__":
    harness.report(main(sys.argv[1:]), "trigger")
