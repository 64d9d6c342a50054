"""Workers: trigger-to-start latency, throughput, idle memory, crash detection, cancel time.

prefect_lite runs as a user runs it: its own redis-server (no persistence), ``prefect-lite
worker start --pool bench`` processes, and ``prefect-lite scheduler start`` (the reaper)
for the crash trials. Flows come from a file by entrypoint; each flow body's first act is
a UDP datagram to this process (``bench/worker_probe.py``), so "the body started" is seen
without polling. A run is triggered the way ``create_flow_run_from_deployment`` does it:
create the run due now, then hand it to admission.

- ``trigger -> body p50/p99``: one idle worker, ``--samples`` runs one after another (each
  waits for the previous run to end, then a short idle gap); from just before the run is
  created to the flow body's first line.
- ``throughput``: 2 workers, ``--runs`` trivial runs triggered in a burst; runs/s from the
  first trigger to the last run COMPLETED.
- ``idle worker RSS``: the worker process after the latency part, idle; its PSS together
  with its zygote and warm child (shared pages split) on its own row.
- ``crash detection``: ``--trials`` times, a worker (and its children) is killed with
  SIGKILL while a run sleeps; time until the run is CRASHED (lease expiry + reaper).
- ``cancel``: ``--trials`` times, ``client.cancel_flow_run`` on a sleeping run; time until
  CANCELLED.

Baseline: ``bench/baselines/prefect_worker.py`` measures Prefect's process worker (``prefect
worker start --type process`` against ``prefect server start``, default settings) the same
way, with fewer samples (its runs take seconds each).
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

from bench import harness
from bench.worker_probe import (
    Probe,
    descendants_of,
    process_pss_mb,
    process_rss_mb,
    wait_until,
    write_flows,
)

POOL = "bench"
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def environment(probe: Probe) -> Iterator[dict[str, str]]:
    """A redis-server, this process pointed at it, and the environment for our processes."""
    from prefect_lite.settings import reload_settings
    from prefect_lite.storage.connection import reset_connections
    from prefect_lite.storage.embedded import find_redis_server

    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    port = _free_port()
    redis_proc = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
         "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LITE_")}
    env.update(
        PREFECT_LITE_REDIS_URL=url,
        PREFECT_LITE_HOME=str(workdir / "home"),
        PREFECT_LITE_LOGGING_LEVEL="WARNING",
        BENCH_UDP_PORT=str(probe.port),
        PYTHONPATH=str(harness.REPO_DIR),
    )
    saved = dict(os.environ)
    os.environ.update(env)
    reload_settings()
    reset_connections()
    try:
        _wait(lambda: _pings(url), "redis-server did not start")
        write_flows(workdir, "prefect_lite")
        env["BENCH_FLOWS_DIR"] = str(workdir)
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reload_settings()
        reset_connections()
        redis_proc.terminate()
        redis_proc.wait(timeout=30)


def _pings(url: str) -> bool:
    import redis

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


def _wait(predicate: Any, message: str, timeout: float = START_TIMEOUT) -> None:
    if wait_until(predicate, timeout, interval=0.05) is None:
        raise RuntimeError(message)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "prefect_lite", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_worker(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    from prefect_lite.client import get_client

    proc = start(env, "worker", "start", "--pool", POOL, "--name", name)
    client = get_client(sync_client=True)

    def online() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited with {proc.returncode}")
        return any(w.name == name and w.status == "ONLINE" for w in client.read_workers(POOL))

    _wait(online, f"worker {name} did not register")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def trigger(deployment: Any, tag: str, **parameters: Any) -> Any:
    """``create_flow_run_from_deployment`` where the API has it; else what it does."""
    from prefect_lite import _time
    from prefect_lite.client import get_client
    from prefect_lite.orchestration import admission
    from prefect_lite.states import Scheduled

    client = get_client(sync_client=True)
    if hasattr(client, "create_flow_run_from_deployment"):
        return client.create_flow_run_from_deployment(
            deployment.id, parameters={"tag": tag, **parameters}
        )
    run = client.create_flow_run(
        deployment.flow_name,
        parameters={"tag": tag, **parameters},
        deployment_id=deployment.id,
        work_pool_name=POOL,
        state=Scheduled(scheduled_time=_time.now()),
    )
    admission.submit([str(run.id)])
    return run


def state_type(run_id: Any) -> str | None:
    from prefect_lite.storage import keys
    from prefect_lite.storage.connection import get_redis

    value = get_redis().hget(keys.flow_run(str(run_id)), "type")
    return str(value) if value is not None else None


def deploy(env: dict[str, str]) -> tuple[Any, Any]:
    from prefect_lite.client import get_client

    client = get_client(sync_client=True)
    client.create_work_pool(POOL)
    made = [
        client.create_deployment(
            name.replace("_", "-"),
            "bench",
            entrypoint=f"bench_flows.py:{name}",
            path=env["BENCH_FLOWS_DIR"],
            work_pool_name=POOL,
        )
        for name in ("bench_quick", "bench_sleep")
    ]
    return made[0], made[1]


# ----------------------------------------------------------------------------- the parts


def latency(env: dict[str, str], probe: Probe, quick: Any, samples: int) -> dict[str, Any]:
    worker = start_worker(env, "latency")
    try:
        delays = []
        for i in range(samples + 5):
            time.sleep(0.05)  # let the worker go idle (its next warm child is forked)
            began = time.time()
            run = trigger(quick, f"lat-{i}")
            body = probe.wait(f"lat-{i}", timeout=60)
            if i >= 5:  # the first ones warm up caches on both sides
                delays.append((body - began) * 1e6)
            _wait(lambda run=run: state_type(run.id) == "COMPLETED", "a run did not complete")
        time.sleep(0.5)
        tree = [worker.pid, *descendants_of(worker.pid)]
        return {
            "stats": harness.Stats.from_samples(delays),
            "rss_mb": process_rss_mb(worker.pid),
            "pss_mb": sum(process_pss_mb(pid) for pid in tree),
            "processes": len(tree),
        }
    finally:
        stop(worker)


def throughput(env: dict[str, str], quick: Any, runs: int) -> float:
    from prefect_lite.storage import keys
    from prefect_lite.storage.connection import get_redis

    workers = [start_worker(env, f"tp-{i}") for i in range(2)]
    try:
        r = get_redis()
        done_before = int(r.zcard(keys.flow_run_index_state("COMPLETED")))
        began = time.monotonic()
        for i in range(runs):
            trigger(quick, f"tp-{i}")
        finished = wait_until(
            lambda: int(r.zcard(keys.flow_run_index_state("COMPLETED"))) - done_before >= runs,
            timeout=600,
            interval=0.02,
        )
        if finished is None:
            raise RuntimeError("the throughput runs did not all complete")
        return runs / (finished - began)
    finally:
        for worker in workers:
            stop(worker)


def cancel_times(env: dict[str, str], probe: Probe, sleep: Any, trials: int) -> list[float]:
    from prefect_lite.client import get_client

    client = get_client(sync_client=True)
    worker = start_worker(env, "cancel")
    try:
        times = []
        for i in range(trials):
            run = trigger(sleep, f"cancel-{i}")
            probe.wait(f"cancel-{i}", timeout=60)
            asked = time.monotonic()
            client.cancel_flow_run(run.id)
            ended = wait_until(lambda run=run: state_type(run.id) == "CANCELLED", 60, 0.002)
            if ended is None:
                raise RuntimeError("a cancelled run did not end CANCELLED")
            times.append((ended - asked) * 1e6)
        return times
    finally:
        stop(worker)


def crash_times(env: dict[str, str], probe: Probe, sleep: Any, trials: int) -> list[float]:
    scheduler = start(env, "scheduler", "start")
    try:
        times = []
        for i in range(trials):
            worker = start_worker(env, f"doomed-{i}")
            run = trigger(sleep, f"crash-{i}")
            probe.wait(f"crash-{i}", timeout=60)
            os.killpg(worker.pid, signal.SIGKILL)
            killed = time.monotonic()
            worker.wait()
            ended = wait_until(lambda run=run: state_type(run.id) == "CRASHED", 60, 0.01)
            if ended is None:
                raise RuntimeError("a killed worker's run was not marked CRASHED in 60 s")
            times.append((ended - killed) * 1e6)
        return times
    finally:
        stop(scheduler)


# ----------------------------------------------------------------------------- report


def ours(samples: int, runs: int, trials: int) -> dict[str, Any]:
    probe = Probe()
    try:
        with environment(probe) as env:
            quick, sleep = deploy(env)
            figures = latency(env, probe, quick, samples)
            figures["throughput"] = throughput(env, quick, runs)
            figures["cancel"] = harness.Stats.from_samples(cancel_times(env, probe, sleep, trials))
            figures["crash"] = harness.Stats.from_samples(crash_times(env, probe, sleep, trials))
            return figures
    finally:
        probe.close()


def baseline(samples: int, runs: int, trials: int) -> dict[str, Any] | None:
    if not harness.prefect_available():
        return None
    script = harness.BENCH_DIR / "baselines" / "prefect_worker.py"
    args = ["--samples", str(samples), "--runs", str(runs), "--trials", str(trials)]
    return harness.run_in_prefect_venv(script, args, timeout=3600)


def _stat(data: dict[str, Any] | None, key: str, field: str) -> float | None:
    if not data or data.get(key) is None:
        return None
    value = data[key]
    stats = value if isinstance(value, harness.Stats) else harness.Stats.from_dict(value)
    return float(getattr(stats, field)) / 1000  # ms


def _samples(data: dict[str, Any] | None, key: str) -> int | None:
    value = (data or {}).get(key)
    if value is None:
        return None
    return int(value.n if isinstance(value, harness.Stats) else value["n"])


def rows(mine: dict[str, Any], theirs: dict[str, Any] | None) -> list[harness.Row]:
    out: list[harness.Row] = []
    for label, key, field in (
        ("trigger -> body p50", "stats", "p50_us"),
        ("trigger -> body p99", "stats", "p99_us"),
        ("cancel -> CANCELLED p50", "cancel", "p50_us"),
        ("cancel -> CANCELLED p99", "cancel", "p99_us"),
        ("kill -9 -> CRASHED p50", "crash", "p50_us"),
        ("kill -9 -> CRASHED p99", "crash", "p99_us"),
    ):
        out.append(
            {
                "name": label,
                "prefect_lite": _stat(mine, key, field),
                "baseline": _stat(theirs, key, field),
                "unit": "ms",
                "samples": [_samples(mine, key), _samples(theirs, key)],
            }
        )
    theirs = theirs or {}
    out.append(
        {
            "name": "throughput, 2 workers",
            "prefect_lite": mine["throughput"],
            "baseline": theirs.get("throughput"),
            "unit": "runs/s",
        }
    )
    out.append(
        {
            "name": "idle worker RSS",
            "prefect_lite": mine["rss_mb"],
            "baseline": theirs.get("rss_mb"),
            "unit": "MiB",
        }
    )
    out.append(
        {
            "name": "idle worker tree PSS",
            "prefect_lite": mine["pss_mb"],
            "baseline": theirs.get("pss_mb"),
            "unit": "MiB",
            "processes": [mine["processes"], theirs.get("processes")],
        }
    )
    if theirs.get("notes"):
        out.append(
            {
                "name": "baseline notes",
                "prefect_lite": None,
                "baseline": None,
                "unit": "",
                "notes": theirs["notes"],
            }
        )
    return out


def main(argv: list[str] | None = None) -> list[harness.Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--baseline-samples", type=int, default=10)
    parser.add_argument("--baseline-runs", type=int, default=30)
    parser.add_argument("--baseline-trials", type=int, default=5)
    parser.add_argument("--no-baseline", action="store_true")
    options = parser.parse_args(argv if argv is not None else [])
    mine = ours(options.samples, options.runs, options.trials)
    theirs = None
    if not options.no_baseline:
        theirs = baseline(options.baseline_samples, options.baseline_runs, options.baseline_trials)
    return rows(mine, theirs)


if __name__ == "__main__":
    harness.report(main(sys.argv[1:]), "worker")
