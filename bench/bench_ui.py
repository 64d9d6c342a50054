"""UI pages at scale: server time and Redis round trips per page, and the browser's long
tasks on a run page with 10,000 task runs.

    flock /tmp/bench.lock python -m bench.bench_ui [--runs 100000] [--deployments 1000]
        [--tasks 10000] [--repeat 30] [--no-browser]

A private redis-server is filled with ``--runs`` flow runs (in every state, over 30 days,
spread over the deployments), ``--deployments`` deployments and one flow run with
``--tasks`` task runs. Each page is requested ``--repeat`` times over loopback from the
app served in this process; its time is the request's wall time (an upper bound of the
server time). Round trips are the Redis requests the server sent for one page (a
pipeline counts once), counted on redis-py's connection. Targets (issue 17): p95 under
50 ms for every page, under 300 ms for the 10k-task run page; no browser main-thread
task over 200 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from redis.connection import AbstractConnection

from bench.harness import Stats, report
from bench.ui_data import CHROMIUM, private_redis, served, task_runs
from prefect_lite import _time
from prefect_lite.api.deployments import create_deployment
from prefect_lite.api.flow_runs import create_flow_run
from prefect_lite.api.work_pools import create_work_pool
from prefect_lite.schemas import FlowRun
from prefect_lite.states import Cancelled, Completed, Crashed, Failed, Pending, Running, Scheduled
from prefect_lite.storage import runs

STATES: list[Callable[[], Any]] = [Completed] * 6 + [Failed, Crashed, Cancelled, Running]


class RoundTrips:
    """Counts requests sent to Redis by one thread (redis-py's ``send_packed_command``)."""

    def __init__(self) -> None:
        self.count = 0
        self.thread: int | None = None
        original = AbstractConnection.send_packed_command
        counter = self

        def counting(conn: AbstractConnection, command: Any, check_health: bool = True) -> None:
            if counter.thread is None or threading.get_ident() != counter.thread:
                counter.count += 1
            original(conn, command, check_health)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]


def seed(n_runs: int, n_deployments: int, n_tasks: int) -> dict[str, Any]:
    create_work_pool("bench-pool")
    deployments = [
        create_deployment(
            f"flow-{i % 50}",
            f"dep-{i}",
            entrypoint="flows.py:f",
            work_pool_name="bench-pool",
            schedules=[{"cron": f"{i % 60} * * * *"}],  # type: ignore[list-item]
            parameter_openapi_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
        )
        for i in range(n_deployments)
    ]
    rng = random.Random(17)
    now = _time.now()
    batch = runs.RunBatch()
    for i in range(n_runs):
        dep = deployments[i % n_deployments]
        when = now - timedelta(seconds=rng.uniform(0, 30 * 86_400))
        run = FlowRun(
            name=f"run-{i}",
            flow_id=dep.flow_id,
            flow_name=dep.flow_name,
            deployment_id=dep.id,
            work_pool_name="bench-pool",
            tags=["bench", f"t{i % 10}"],
            expected_start_time=when,
        )
        state = Scheduled(scheduled_time=when) if i % 50 == 0 else rng.choice(STATES)()
        batch.create("flow", run, state)
        if len(batch) >= 5000:
            batch.execute()
    batch.execute()
    big = create_flow_run("big", state=Pending(), deployment_id=deployments[0].id)
    runs.propose("flow", big.id, runs.Proposal(state=Running(), force=True))
    task_runs(big, n_tasks, names=7)
    small = create_flow_run("small", state=Pending(), deployment_id=deployments[1].id)
    task_runs(small, 20)
    return {"dep": deployments[0].id, "big": big.id, "small": small.id}


def pages(ids: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("dashboard", "/"),
        ("runs", "/runs"),
        ("runs, 2 states", "/runs?state=FAILED&state=CRASHED"),
        ("runs, page 100", "/runs?page=100"),
        ("runs, last 24 h", "/runs?range=24h"),
        ("runs, tag (post-filtered)", "/runs?tag=t3"),
        ("runs, deployment+state", f"/runs?deployment={ids['dep']}&state=COMPLETED"),
        ("runs table fragment", "/runs/table"),
        ("flow run, 20 tasks", f"/flow-runs/{ids['small']}"),
        ("flow run, 10k tasks", f"/flow-runs/{ids['big']}"),
        ("flow run live, 10k tasks", f"/flow-runs/{ids['big']}/live"),
        ("deployments", "/deployments"),
        ("deployments, page 20", "/deployments?page=20"),
        ("deployment", f"/deployments/{ids['dep']}"),
        ("deployment run form", f"/deployments/{ids['dep']}/run"),
        ("work pools", "/work-pools"),
        ("work pool", "/work-pools/bench-pool"),
        ("variables", "/variables"),
        ("blocks", "/blocks"),
    ]


def measure_pages(
    base: str, ids: dict[str, Any], repeat: int, trips: RoundTrips
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, timeout=60) as client:
        trips.thread = threading.get_ident()  # the client's own thread sends no Redis traffic
        for name, path in pages(ids):
            client.get(path).raise_for_status()  # warm-up
            before = trips.count
            client.get(path)
            round_trips = trips.count - before
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                answer = client.get(path)
                samples.append((time.perf_counter() - started) * 1e6)
                answer.raise_for_status()
            stats = Stats.from_samples(samples)
            target = 300 if "10k" in name else 50
            p95 = sorted(samples)[max(0, int(len(samples) * 0.95) - 1)] / 1000
            rows.append(
                {
                    "name": f"{name}: p95",
                    "prefect_lite": p95,
                    "baseline": None,
                    "unit": "ms",
                    "target_ms": target,
                    "p50_ms": stats.p50_us / 1000,
                    "meets_target": p95 <= target,
                }
            )
            rows.append(
                {
                    "name": f"{name}: Redis round trips",
                    "prefect_lite": round_trips,
                    "baseline": None,
                    "unit": "",
                }
            )
            print(
                f"{name:32s} p50 {stats.p50_us / 1000:7.1f} ms  p95 {p95:7.1f} ms  "
                f"(target {target} ms)  round trips {round_trips}",
                flush=True,
            )
    return rows


def long_tasks(base: str, run_id: uuid.UUID) -> dict[str, Any]:
    """The longest main-thread task while the 10k-task run page loads and polls twice."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    observer = """
      window.__long = [];
      new PerformanceObserver(list => {
        for (const e of list.getEntries()) window.__long.push(e.duration);
      }).observe({type: 'longtask', buffered: true});
    """
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.add_init_script(observer)
        page.goto(f"{base}/flow-runs/{run_id}")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(4500)  # two live refreshes (every 2 s)
        durations = page.evaluate("window.__long")
        nodes = page.evaluate("document.getElementsByTagName('*').length")
        browser.close()
    return {"longest_ms": max(durations, default=0.0), "count": len(durations), "nodes": nodes}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv or [])
    with private_redis():
        started = time.perf_counter()
        ids = seed(args.runs, args.deployments, args.tasks)
        print(
            f"seeded {args.runs} runs, {args.deployments} deployments, a run with "
            f"{args.tasks} task runs in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        trips = RoundTrips()
        with served() as base:
            rows = measure_pages(base, ids, args.repeat, trips)
            if args.no_browser or not shutil.which(CHROMIUM):
                print("browser check skipped (--no-browser, or no Chromium)")
            else:
                found = long_tasks(base, ids["big"])
                rows.append(
                    {
                        "name": "10k-task page: longest main-thread task",
                        "prefect_lite": found["longest_ms"],
                        "baseline": None,
                        "unit": "ms",
                        "target_ms": 200,
                        "long_tasks": found["count"],
                        "dom_nodes": found["nodes"],
                    }
                )
                print(
                    f"browser: longest task {found['longest_ms']:.0f} ms over "
                    f"{found['count']} long tasks; {found['nodes']} DOM nodes"
                )
    return rows


if __name__ == "__main__":
    report(main(sys.argv[1:]), "ui")
