"""The flow/task engine: per-task and per-flow overhead, a large map, memory, import.

Rows (each against the same workload under Prefect 3, in the same run):
- ``per-task overhead``: a flow of 1,000 sequential trivial task calls, minus a plain
  loop of 1,000 function calls, per task (median of ``REPEATS`` flows, after a warm-up).
  Recording is on: every task run and state reaches the store before the flow returns.
  The JSON also keeps this process's CPU time per task (less sensitive to a busy
  machine than wall time; Redis's own CPU is not in it).
- ``local flow call``: 100 calls of a trivial flow, per call.
- ``.map over 10,000 items``: one flow mapping a trivial task over 10,000 items and
  collecting the results.
- ``peak RSS, 1,000-task flow``: a fresh interpreter that imports, runs the 1,000-task
  flow once and reports its peak RSS.
- ``import flow, task``: ``from <package> import flow, task`` in a fresh interpreter,
  minus interpreter start-up (median of 10).

Each workload runs in a fresh interpreter (``python -m bench.bench_engine --worker
KIND``) so one does not warm or bloat the next. prefect_lite uses its embedded Redis in a
temporary ``PREFECT_LITE_HOME``; console logs go to /dev/null on both sides.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

TASKS = 1000
FLOWS = 100
MAP_ITEMS = 10_000
REPEATS = 5
IMPORT_REPEATS = 10


# ----------------------------------------------------------------------- workloads


def _plain_loop_seconds(n: int) -> float:
    def noop(i: int) -> int:
        return i

    started = time.perf_counter()
    for i in range(n):
        noop(i)
    return time.perf_counter() - started


def run_workload(kind: str, flow: Any, task: Any, repeats: int = REPEATS) -> dict[str, Any]:
    """The measurements of one ``kind``, with the ``flow``/``task`` decorators given
    (prefect_lite's or Prefect's: baselines/prefect_engine.py calls this too)."""

    @task
    def noop(i: int) -> int:
        return i

    @flow
    def sequential(n: int) -> None:
        for i in range(n):
            noop(i)

    @flow
    def trivial() -> None:
        return None

    @flow
    def mapped(n: int) -> int:
        return len(noop.map(range(n)).result())

    if kind == "rss":
        sequential(TASKS)
        return {"rss_mb": harness.rss_mb()}
    if kind == "tasks":
        sequential(50)
        samples, cpu = [], []
        for _ in range(repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            sequential(TASKS)
            elapsed = time.perf_counter() - started
            cpu.append((time.process_time() - cpu_started) / TASKS * 1e6)
            samples.append((elapsed - _plain_loop_seconds(TASKS)) / TASKS * 1e6)
        return {
            "per_task_us": statistics.median(samples),
            "samples_us": samples,
            "process_cpu_per_task_us": statistics.median(cpu),  # this process only
        }
    if kind == "flows":
        for _ in range(5):
            trivial()
        samples = []
        for _ in range(max(1, repeats // 2)):
            started = time.perf_counter()
            for _ in range(FLOWS):
                trivial()
            samples.append((time.perf_counter() - started) / FLOWS * 1000)
        return {"per_flow_ms": statistics.median(samples), "samples_ms": samples}
    if kind == "map":
        mapped(100)
        started = time.perf_counter()
        count = mapped(MAP_ITEMS)
        return {"map_s": time.perf_counter() - started, "count": count}
    raise ValueError(f"unknown workload {kind!r}")


def _worker(kind: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    os.environ.pop("PREFECT_LITE_REDIS_URL", None)
    os.environ["PREFECT_LITE_HOME"] = str(home)
    from prefect_lite import flow, task
    from prefect_lite.settings import get_settings
    from prefect_lite.storage.embedded import EmbeddedRedis

    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            result = run_workload(kind, flow, task)
    finally:
        EmbeddedRedis(get_settings().home).stop()
        shutil.rmtree(home, ignore_errors=True)
    harness.emit(result)


def _run_lite(kind: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_engine", "--worker", kind],
        cwd=harness.REPO_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{done.stderr[-3000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def _run_prefect(kind: str) -> dict[str, Any] | None:
    if not harness.prefect_available():
        return None
    return harness.run_in_prefect_venv(
        harness.BENCH_DIR / "baselines" / "prefect_engine.py",
        [kind],
        env={"PYTHONPATH": f"{harness.BENCH_DIR}{os.pathsep}{harness.REPO_DIR}"},
    )


def _import_ms(python: str, module: str, env: dict[str, str] | None) -> float:
    def run(code: str) -> None:
        subprocess.run([python, "-c", code], cwd=harness.REPO_DIR, env=env, check=True)

    floor = harness.measure(lambda: run("pass"), repeat=IMPORT_REPEATS, warmup=1).p50_us
    total = harness.measure(
        lambda: run(f"from {module} import flow, task"), repeat=IMPORT_REPEATS, warmup=1
    ).p50_us
    return (total - floor) / 1000


def main() -> list[harness.Row]:
    lite = {kind: _run_lite(kind) for kind in ("tasks", "flows", "map", "rss")}
    base = {kind: _run_prefect(kind) for kind in ("tasks", "flows", "map", "rss")}
    lite_import = _import_ms(sys.executable, "prefect_lite", None)
    base_import = (
        _import_ms(str(harness.PREFECT_PYTHON), "prefect", harness.prefect_env())
        if harness.prefect_available()
        else None
    )

    def value(side: dict[str, Any], kind: str, key: str) -> float | None:
        found = side.get(kind)
        return None if found is None else float(found[key])

    return [
        {
            "name": f"per-task overhead ({TASKS:,} sequential tasks)",
            "prefect_lite": value(lite, "tasks", "per_task_us"),
            "baseline": value(base, "tasks", "per_task_us"),
            "unit": "us",
            "samples": lite["tasks"]["samples_us"],
            "process_cpu_per_task_us": lite["tasks"]["process_cpu_per_task_us"],
        },
        {
            "name": f"local flow call ({FLOWS} trivial flows)",
            "prefect_lite": value(lite, "flows", "per_flow_ms"),
            "baseline": value(base, "flows", "per_flow_ms"),
            "unit": "ms",
        },
        {
            "name": f".map over {MAP_ITEMS:,} items",
            "prefect_lite": value(lite, "map", "map_s"),
            "baseline": value(base, "map", "map_s"),
            "unit": "s",
        },
        {
            "name": f"peak RSS, {TASKS:,}-task flow",
            "prefect_lite": value(lite, "rss", "rss_mb"),
            "baseline": value(base, "rss", "rss_mb"),
            "unit": "MiB",
        },
        {
            "name": "import flow, task (minus start-up)",
            "prefect_lite": lite_import,
            "baseline": base_import,
            "unit": "ms",
        },
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--lite-only":
        print(json.dumps(_run_lite(sys.argv[2])))
    else:
        harness.report(main(), "engine")
