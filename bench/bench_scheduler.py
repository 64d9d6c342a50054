"""The scheduler service: on-time promotion at scale, memory, and replicas without duplicates.

Each part gets its own redis-server (no persistence: this measures the scheduler, not the
disk) and runs the scheduler the way a user does, ``prefect-lite scheduler start`` in its
own process. A consumer thread in this process pops the pool's ready list the way a
worker would (``LPOP`` in batches) and timestamps every run it takes.

- **Promotion** (``--deployments``, default 10,000, all ``* * * * *``): after the first
  planning pass (each deployment gets its next hour of runs), every run due at the next
  ``--minutes`` minute boundaries is checked: lateness = time it was taken from the ready
  list - its scheduled time (includes the consumer's own lag); runs never promoted are
  counted. Scheduler RSS is its peak (VmHWM) over the whole run, planning included.
- **Replicas** (``--replicas`` 3, ``--interval-deployments`` 20 with 1-second interval
  schedules, ``--replica-seconds`` long): every run id expected in the window (derived
  from deployment id and second, as the scheduler derives it) must be taken exactly once:
  duplicates and missed runs are counted.
- **Side by side** (``--same-setup-deployments``, default 1,000 minutely plus the interval
  deployments): both schedulers register the same deployments and run one planning pass,
  then ``--replicas`` passes at once; Prefect's is its scheduler service's own pass on
  SQLite (``bench/baselines/prefect_scheduler_live.py``), which also reports the loop
  interval and late threshold it runs with by default.

``python -m bench.bench_scheduler --minutes 3 --replica-seconds 600`` is the full run.
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
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import harness

POOL = "bench"
START_TIMEOUT = 60.0


# ----------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server without persistence; its URL."""
    from prefect_lite.storage.embedded import find_redis_server

    workdir = Path(tempfile.mkdtemp(prefix="bench-scheduler-redis-"))
    port = _free_port()
    proc = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
         "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait(lambda: _answers(url), "redis-server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _answers(url: str) -> bool:
    import redis

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


def _wait(predicate: Any, message: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.05)


@contextlib.contextmanager
def use_redis(url: str) -> Iterator[dict[str, str]]:
    """Point this process at ``url``; the environment for scheduler processes."""
    from prefect_lite.settings import reload_settings
    from prefect_lite.storage.connection import reset_connections

    home = tempfile.mkdtemp(prefix="bench-scheduler-home-")
    env = {**os.environ, "PREFECT_LITE_REDIS_URL": url, "PREFECT_LITE_HOME": home}
    env["PYTHONPATH"] = str(harness.REPO_DIR)
    saved = {k: os.environ.get(k) for k in ("PREFECT_LITE_REDIS_URL", "PREFECT_LITE_HOME")}
    os.environ.update(PREFECT_LITE_REDIS_URL=url, PREFECT_LITE_HOME=home)
    reload_settings()
    reset_connections()
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reload_settings()
        reset_connections()


def start_scheduler(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``prefect-lite scheduler start``; its stderr goes to a file (``log_of``)."""
    handle, name = tempfile.mkstemp(prefix="bench-scheduler-", suffix=".log")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect_lite", "scheduler", "start"],
            env=env, stdout=subprocess.DEVNULL, stderr=handle,
        )  # fmt: skip
    finally:
        os.close(handle)
    _logs[proc.pid] = Path(name)
    return proc


_logs: dict[int, Path] = {}


def log_of(proc: subprocess.Popen[bytes]) -> str:
    path = _logs.get(proc.pid)
    return path.read_text(errors="replace")[-3000:] if path and path.exists() else ""


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"scheduler exited {proc.returncode}: {log_of(proc)}")


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Consumer(threading.Thread):
    """Takes runs off the ready list in batches, like a worker; remembers when."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.taken: list[tuple[str, float]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        from prefect_lite.orchestration.admission import ready_key
        from prefect_lite.storage.connection import get_redis

        r: Any = get_redis()
        key = ready_key(POOL, None)
        while not self.stop_event.is_set():
            got = r.lpop(key, 5000)
            if got:
                now = time.time()
                self.taken += [(rid, now) for rid in got]
            else:
                time.sleep(0.002)


# ----------------------------------------------------------------------------- parts


def promotion(deployments: int, minutes: int) -> list[harness.Row]:
    from prefect_lite.api.deployments import create_deployment
    from prefect_lite.schedules import Cron
    from prefect_lite.storage import keys
    from prefect_lite.storage.connection import get_redis
    from scheduler.planner import scheduled_run_id

    with redis_server() as url, use_redis(url) as env:
        started = time.monotonic()
        ids = [
            create_deployment("bench", f"d{i:05d}", work_pool_name=POOL,
                              schedules=[Cron("* * * * *")]).id
            for i in range(deployments)
        ]  # fmt: skip
        created_s = time.monotonic() - started
        r: Any = get_redis()
        proc = start_scheduler(env)
        consumer = Consumer()
        consumer.start()
        try:
            planning = time.monotonic()

            def planned() -> bool:
                soon = time.time() + 600
                return int(r.zcount(keys.plan_index(), "-inf", soon)) == 0

            _wait(planned, "the first planning pass did not finish", timeout=3600)
            planning_s = time.monotonic() - planning
            first = datetime.fromtimestamp((time.time() // 60 + 1) * 60, UTC)
            boundaries = [first + timedelta(minutes=m) for m in range(minutes)]
            _wait(lambda: time.time() > boundaries[-1].timestamp() + 20, "", timeout=3600)
            rss = rss_mb(proc.pid)
        finally:
            consumer.stop_event.set()
            consumer.join()
            stop(proc)
        expected = {
            str(scheduled_run_id(dep_id, when)): when.timestamp()
            for when in boundaries
            for dep_id in ids
        }
        taken = {rid: at for rid, at in consumer.taken if rid in expected}
        late = sorted(at - expected[rid] for rid, at in taken.items())
    stats = harness.Stats.from_samples([x * 1e6 for x in late]) if late else None
    return [
        _row(
            f"{deployments:,} x '* * * * *': lateness p50",
            stats.p50_us / 1e6 if stats else None,
            "s",
        ),
        _row(
            f"{deployments:,} x '* * * * *': lateness p99",
            stats.p99_us / 1e6 if stats else None,
            "s",
        ),
        _row(f"{deployments:,} x '* * * * *': lateness max", late[-1] if late else None, "s"),
        _row(f"runs due at {minutes} minute boundaries", len(expected), "runs"),
        _row("of those never promoted", len(expected) - len(taken), "runs"),
        _row("scheduler RSS (peak, incl. planning)", rss, "MB"),
        _row(f"first planning pass ({deployments * 60:,} runs)", planning_s, "s"),
        _row(f"registering {deployments:,} deployments", created_s, "s"),
    ]


def replicas(count: int, deployments: int, seconds: float) -> list[harness.Row]:
    from prefect_lite.api.deployments import create_deployment
    from prefect_lite.schedules import Interval
    from scheduler.planner import scheduled_run_id

    with redis_server() as url, use_redis(url) as env:
        ids = [
            create_deployment("bench", f"s{i:03d}", work_pool_name=POOL,
                              schedules=[Interval(1)]).id
            for i in range(deployments)
        ]  # fmt: skip
        consumer = Consumer()
        consumer.start()
        procs = [start_scheduler(env) for _ in range(count)]
        try:
            try:
                _wait(lambda: bool(consumer.taken), "no replica promoted anything")
            except RuntimeError:
                raise RuntimeError("no replica promoted anything:\n" + log_of(procs[0])) from None
            window_start = int(time.time()) + 3
            _wait(lambda: time.time() > window_start + seconds, "", timeout=seconds + 600)
            window_end = int(time.time()) - 3
            peak = max(rss_mb(p.pid) for p in procs)
        finally:
            for p in procs:
                stop(p)
            consumer.stop_event.set()
            consumer.join()
    expected: dict[str, float] = {}
    for second in range(window_start, window_end + 1):
        when = datetime.fromtimestamp(second, UTC)
        for dep_id in ids:
            expected[str(scheduled_run_id(dep_id, when))] = float(second)
    counts = Counter(rid for rid, _ in consumer.taken)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    missed = sum(1 for rid in expected if rid not in counts)
    late = sorted(at - expected[rid] for rid, at in consumer.taken if rid in expected)
    stats = harness.Stats.from_samples([x * 1e6 for x in late]) if late else None
    label = f"{count} replicas, {deployments} x 1 s interval, {window_end - window_start + 1} s"
    return [
        _row(f"{label}: runs checked", len(expected), "runs"),
        _row(f"{label}: duplicates", duplicates, "runs"),
        _row(f"{label}: missed", missed, "runs"),
        _row(f"{label}: lateness p99", stats.p99_us / 1e6 if stats else None, "s"),
        _row("replica RSS (peak)", peak, "MB"),
    ]


def same_setup(cron: int, interval: int, passes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One planning pass over ``cron`` minutely and ``interval`` 1-second deployments, then
    ``passes`` passes at once: ours here, Prefect's by its baseline script (``{}`` if absent).
    Ours start from scratch for the passes at once; Prefect's follow its first pass (its
    interval deployments are planned again by each of them, its cron ones are not). Both
    count runs in the store, and duplicates as runs beyond the first for any (deployment,
    scheduled time).
    """
    base: dict[str, Any] = {}
    if harness.prefect_available():
        base = harness.run_in_prefect_venv(
            harness.BENCH_DIR / "baselines" / "prefect_scheduler_live.py",
            ["--cron", str(cron), "--interval", str(interval), "--replicas", str(passes)],
        )
    one = _register_and_plan(cron, interval, 1)
    together = _register_and_plan(cron, interval, passes)  # on a second, fresh store
    ours = {
        "registered_s": one.registered_s,
        "first_pass_s": one.plan_s,
        "runs_created": one.runs,
        "runs_per_s": one.runs / one.plan_s if one.plan_s else None,
        "duplicates": together.duplicates,
        "runs_missing_vs_one_pass": one.runs - together.runs,
    }
    return ours, base


@dataclass
class _Planned:
    registered_s: float
    plan_s: float
    runs: int  # in the store afterwards
    duplicates: int  # runs beyond the first for any (deployment, scheduled time)


def _register_and_plan(cron: int, interval: int, passes: int) -> _Planned:
    """On a fresh store: register the deployments, then run ``passes`` planners at once
    until nothing is due, and count the runs they left."""
    from prefect_lite.api.deployments import create_deployment
    from prefect_lite.schedules import Cron, Interval
    from prefect_lite.storage import scheduling
    from scheduler import Scheduler
    from scheduler.planner import SCHEDULED_FOR_LABEL

    with redis_server() as url, use_redis(url):
        started = time.perf_counter()
        ids = [
            create_deployment("bench", f"d{i:05d}", work_pool_name=POOL,
                              schedules=[Cron("* * * * *") if i < cron else Interval(1)]).id
            for i in range(cron + interval)
        ]  # fmt: skip
        registered_s = time.perf_counter() - started
        now = datetime.now(UTC)
        threads = [
            threading.Thread(target=_plan_all, args=(Scheduler(), now)) for _ in range(passes)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        plan_s = time.perf_counter() - started
        runs = duplicates = 0
        for dep_id in ids:
            times = Counter(
                r.labels[SCHEDULED_FOR_LABEL] for r in scheduling.unstarted_auto_runs(dep_id)
            )
            runs += sum(times.values())
            duplicates += sum(n - 1 for n in times.values())
    return _Planned(registered_s, plan_s, runs, duplicates)


def _plan_all(replica: Any, now: datetime) -> None:
    """Plan until nothing is due at ``now``."""
    while replica.plan(now).backlog:
        pass


def against_prefect(cron: int, interval: int, passes: int) -> list[harness.Row]:
    from prefect_lite.settings import get_settings
    from scheduler import SchedulerConfig

    config = SchedulerConfig()
    ours, live = same_setup(cron, interval, passes)
    ours_minutely = min(config.horizon_runs, int(config.horizon_seconds // 60))
    shape = f"{cron:,} x '* * * * *' + {interval} x 1 s"
    return [
        _row("scheduler loop interval (longest sleep)", config.loop_seconds, "s",
             live.get("scheduler_loop_seconds")),
        _row("runs created ahead, '* * * * *'", ours_minutely, "runs",
             live.get("minutely_runs_per_deployment")),
        _row("runs created ahead, 1 s interval", config.horizon_runs, "runs",
             live.get("per_second_runs_per_deployment")),
        _row("late after", get_settings().late_after_seconds, "s",
             live.get("late_runs_after_seconds")),
        _row(f"{shape}: registering", ours["registered_s"], "s", live.get("registered_s")),
        _row(f"{shape}: first planning pass", ours["first_pass_s"], "s", live.get("first_pass_s")),
        _row(f"{shape}: runs created by it", ours["runs_created"], "runs",
             live.get("runs_created")),
        _row(f"{shape}: runs planned per second", ours["runs_per_s"], "runs/s",
             live.get("runs_per_s")),
        _row(f"{passes} planning passes at once: duplicates", ours["duplicates"], "runs",
             live.get("duplicate_runs")),
        _row(f"{passes} planning passes at once: runs missing vs one pass",
             ours["runs_missing_vs_one_pass"], "runs"),
        {"name": "Prefect scheduler run", "prefect_lite": None, "baseline": None, "unit": "",
         "prefect": live},
    ]  # fmt: skip


def _row(name: str, value: float | None, unit: str, baseline: float | None = None) -> harness.Row:
    return {"name": name, "prefect_lite": value, "baseline": baseline, "unit": unit}


def main(argv: list[str] | None = None) -> list[harness.Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=2, help="minute boundaries measured")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--interval-deployments", type=int, default=20)
    parser.add_argument("--replica-seconds", type=float, default=60.0)
    parser.add_argument(
        "--same-setup-deployments",
        type=int,
        default=1000,
        help="minutely deployments both schedulers plan side by side",
    )
    parser.add_argument("--skip", choices=["promotion", "replicas"], action="append", default=[])
    args = parser.parse_args([] if argv is None else argv)
    rows: list[harness.Row] = []
    if "promotion" not in args.skip:
        rows += promotion(args.deployments, args.minutes)
        print(harness.format_table(rows), flush=True)
    if "replicas" not in args.skip:
        rows += replicas(args.replicas, args.interval_deployments, args.replica_seconds)
    rows += against_prefect(args.same_setup_deployments, args.interval_deployments, args.replicas)
    return rows


if __name__ == "__main__":
    harness.report(main(sys.argv[1:]), "scheduler")
