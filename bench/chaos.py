"""The chaos suite: the whole system on one machine, broken at random, then checked.

    python bench/chaos.py --seconds 90            # what .ci/run runs
    flock /tmp/bench.lock python bench/chaos.py --seconds 400 --json bench/results/chaos.json

Starts Redis (AOF, a password), the API server, 2 scheduler replicas and 3 workers on a
pool with a concurrency limit, keeps triggering runs of ``bench/chaos_flows.py`` (half
through the API) plus a deployment on a 2 s interval, and for ``--seconds`` picks a fault
every few seconds: kill -9 or SIGTERM of a worker (replaced), kill -9 of a scheduler or
the server (restarted), a Redis restart (1-3 s, or 10-13 s), and, as root, a partition:
worker 0 runs in a network namespace reaching Redis over a veth pair (10.213.0.0/30),
whose link is cut for 20-40 s (no FIN, no RST). Then it heals everything, waits for every
run to end and checks the invariants: one terminal state per run and none stuck, no
duplicate (deployment, scheduled time), no slot left, the pool limit never exceeded, no
body run twice at once, no finished body reported Crashed, and crash detection within
its bounds (process death vs partition). Exit status 1 when an invariant fails.

The tolerance is set to 15 s here (``PREFECT_LITE_STORE_OUTAGE_SECONDS``), so a worker
cut off for more than 21 s fences its runs and the reaper takes them over at 26 s: both
sides of the fencing rule are exercised by 20-40 s partitions.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NETNS, VETH_HOST, VETH_NS = "pl-chaos", "plchaos0", "plchaos1"
HOST_IP, NS_IP = "10.213.0.1", "10.213.0.2"
POOL, LIMIT = "chaos", 6
TOLERANCE, LEASE = 15.0, 6.0
GONE_BOUND = 3.0
PARTITION_BOUND = TOLERANCE + LEASE + 5.0 + 2.0 + 2.0  # fence + margin + pass + a look


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Net:
    """A namespace with a veth pair to the host; ``cut`` downs the link (silently)."""

    def __init__(self) -> None:
        self.up = False

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and shutil.which("ip") is not None

    def setup(self) -> None:
        self.teardown()
        sh("ip", "netns", "add", NETNS)
        sh("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        sh("ip", "link", "set", VETH_NS, "netns", NETNS)
        sh("ip", "addr", "add", f"{HOST_IP}/30", "dev", VETH_HOST)
        sh("ip", "link", "set", VETH_HOST, "up")
        ns = ("ip", "netns", "exec", NETNS)
        sh(*ns, "ip", "addr", "add", f"{NS_IP}/30", "dev", VETH_NS)
        sh(*ns, "ip", "link", "set", VETH_NS, "up")
        sh(*ns, "ip", "link", "set", "lo", "up")
        self.up = True

    def cut(self) -> None:
        sh("ip", "netns", "exec", NETNS, "ip", "link", "set", VETH_NS, "down")

    def heal(self) -> None:
        sh("ip", "netns", "exec", NETNS, "ip", "link", "set", VETH_NS, "up")

    def teardown(self) -> None:
        subprocess.run(["ip", "link", "del", VETH_HOST], stderr=subprocess.DEVNULL, check=False)
        subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL, check=False)
        self.up = False


class Proc:
    """A process in its own session, output to a log file."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.args, self.log, self.env = name, args, log, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int, group: bool = True) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.proc.pid, signum)
            else:
                self.proc.send_signal(signum)

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            self.signal(signal.SIGTERM, group=False)
            try:
                assert self.proc is not None
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)


class Chaos:
    def __init__(
        self, seconds: float, seed: int, partitions: bool, only: list[str] | None = None
    ) -> None:
        self.seconds, self.rng = seconds, random.Random(seed)
        self.only = only or []
        self.watched: dict[str, int] = {"death": 0, "partition": 0}
        self.dir = Path(tempfile.mkdtemp(prefix="pl-chaos-"))
        self.marks = self.dir / "marks"
        self.marks.mkdir()
        self.port, self.api_port = free_port(), free_port()
        self.password = secrets.token_hex(16)
        self.net = Net() if partitions and Net.available() else None
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "PREFECT_LITE_REDIS_URL": self.url,
            "PREFECT_LITE_HOME": str(self.dir / "home"),
            "PREFECT_LITE_STORE_OUTAGE_SECONDS": str(TOLERANCE),
            "PREFECT_LITE_LEASE_SECONDS": str(LEASE),
            "PREFECT_LITE_LOGGING_LEVEL": "WARNING",
        }
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("PREFECT_LITE_")})
        self.redis: Proc | None = None
        self.server: Proc | None = None
        self.schedulers: list[Proc] = []
        self.workers: list[Proc] = []
        self.serial = 0
        self.faults: dict[str, int] = {}
        self.detect: dict[str, list[float]] = {"death": [], "partition": []}
        self.over: dict[str, int] = {"death": 0, "partition": 0}
        self.redis_back = 0.0  # when Redis last answered again after an outage
        self.max_slots = self.max_running = 0
        self.triggered = self.trigger_failures = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ processes
    def cli(self, name: str, *args: str, ns: bool = False, **env: str) -> Proc:
        command = [sys.executable, "-m", "prefect_lite", *args]
        if ns:
            command = ["ip", "netns", "exec", NETNS, *command]
        return Proc(name, command, self.dir / f"{name}.log", {**self.env, **env})

    def start_redis(self) -> None:
        from prefect_lite.storage.embedded import find_redis_server

        binds = ["127.0.0.1"] + ([HOST_IP] if self.net else [])
        self.redis = Proc(
            "redis",
            [find_redis_server(), "--port", str(self.port), "--bind", *binds, "--dir",
             str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--requirepass", self.password, "--protected-mode", "yes"],
            self.dir / "redis.log", self.env,
        )  # fmt: skip
        self.redis.start()
        self.wait(self.redis_answers, 30, "redis did not start")

    def redis_answers(self) -> bool:
        import redis

        try:
            with redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def new_worker(self, slot: int) -> Proc:
        self.serial += 1
        name = f"w{slot}-{self.serial}"
        in_ns = slot == 0 and self.net is not None
        env = {"PREFECT_LITE_REDIS_URL": self.url.replace("127.0.0.1", HOST_IP)} if in_ns else {}
        args = ["worker", "start", "--pool", POOL, "--name", name, "--limit", "3"]
        proc = self.cli(name, *args, "--shutdown-grace-seconds", "3", ns=in_ns, **env)
        proc.start()
        return proc

    def start_all(self) -> None:
        if self.net:
            try:
                self.net.setup()
            except (OSError, subprocess.CalledProcessError) as exc:  # no CAP_NET_ADMIN here
                print(f"no partitions: cannot create a network namespace ({exc})", file=sys.stderr)
                self.net.teardown()
                self.net = None
        self.start_redis()
        from prefect_lite.client import get_client

        with get_client(sync_client=True) as client:
            client.create_work_pool(POOL, concurrency_limit=LIMIT)
            common = {"entrypoint": "bench/chaos_flows.py:chaos_body", "path": str(REPO)}
            self.dep = client.create_deployment(
                "chaos-body", "triggered", work_pool_name=POOL, **common,
                parameters={"seconds": 1.5, "marks": str(self.marks)},
            )  # fmt: skip
            self.scheduled = client.create_deployment(
                "chaos-body", "every-2s", work_pool_name=POOL, **common,
                parameters={"seconds": 0.5, "marks": str(self.marks)},
                schedules=[{"interval": 2.0}],
            )  # fmt: skip
        self.server = self.cli(
            "server", "server", "start", "--no-services", "--port", str(self.api_port)
        )
        self.server.start()
        self.schedulers = [self.cli(f"scheduler-{i}", "scheduler", "start") for i in range(2)]
        for proc in self.schedulers:
            proc.start()
        self.workers = [self.new_worker(i) for i in range(3)]

    # ------------------------------------------------------------------ background
    def trigger_loop(self) -> None:
        from prefect_lite.client import get_client
        from prefect_lite.client.http import HTTPTransport
        from prefect_lite.client.orchestration import SyncPrefectClient

        api = SyncPrefectClient(HTTPTransport(f"http://127.0.0.1:{self.api_port}/api"))
        with get_client(sync_client=True) as direct:
            while not self.stop.wait(0.4):
                client = api if self.triggered % 2 else direct
                try:
                    client.create_flow_run_from_deployment(self.dep.id)
                    self.triggered += 1
                except Exception:
                    self.trigger_failures += 1

    def sample_loop(self) -> None:
        from prefect_lite.storage import keys
        from prefect_lite.storage.connection import get_redis

        while not self.stop.wait(0.25):
            try:
                r = get_redis()
                slots = int(r.zcard(keys.slot_pool(POOL)))
                running = int(r.zcard(keys.flow_run_index_state("RUNNING")))
            except Exception:
                continue
            self.max_slots, self.max_running = (
                max(self.max_slots, slots),
                max(self.max_running, running),
            )

    def running_on(self, worker: Proc) -> list[str]:
        from prefect_lite.client import get_client
        from prefect_lite.states import StateType

        try:
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(states=[StateType.RUNNING], limit=200)
        except Exception as exc:
            print(f"could not read running runs: {exc}", file=sys.stderr)
            return []
        return [str(r.id) for r in runs if r.worker_name == worker.name]

    def time_settling(self, kind: str, run_ids: list[str], since_wall: float, bound: float) -> None:
        """In a thread: for each run, when the reaper said "Crash detected" after
        ``since_wall`` (the state's own timestamp), once the run left RUNNING; a time over
        ``bound`` counts against the invariant."""
        self.watched[kind] += len(run_ids)

        def watch() -> None:
            import uuid

            from prefect_lite.client import get_client

            left = set(run_ids)
            with get_client(sync_client=True) as client:
                while left and time.time() - since_wall < 180:
                    for rid in list(left):
                        with contextlib.suppress(Exception):
                            if client.read_flow_run(uuid.UUID(rid)).state_name == "Running":
                                continue
                            left.discard(rid)
                            for state in client.read_flow_run_states(uuid.UUID(rid)):
                                at = state.timestamp.timestamp()
                                if at > since_wall and "Crash detected" in (state.message or ""):
                                    with self.lock:
                                        self.detect[kind].append(at - since_wall)
                                        self.over[kind] += at - since_wall > bound
                                    break
                    time.sleep(0.05)

        threading.Thread(target=watch, daemon=True).start()

    # ------------------------------------------------------------------ faults
    def fault(self) -> None:
        kinds = ["worker_kill9", "worker_kill9", "worker_sigterm", "scheduler_kill9",
                 "server_kill9", "redis_short", "redis_long"]  # fmt: skip
        if self.net:
            kinds.append("partition")
        if self.only:
            kinds = [k for k in kinds if k in self.only]
        kind = self.rng.choice(kinds)
        self.faults[kind] = self.faults.get(kind, 0) + 1
        getattr(self, kind)()

    def worker_kill9(self) -> None:
        slot = self.rng.randrange(3)
        worker = self.workers[slot]
        runs = self.running_on(worker)
        killed = time.time()
        worker.signal(signal.SIGKILL)
        # The reaper takes nothing over for one lease after the store comes back (the
        # outage grace), so a death inside that window is settled when the grace ends.
        bound = max(GONE_BOUND, self.redis_back + LEASE + GONE_BOUND - killed)
        self.time_settling("death", runs, killed, bound)
        time.sleep(self.rng.uniform(1, 3))
        self.workers[slot] = self.new_worker(slot)

    def worker_sigterm(self) -> None:
        slot = self.rng.randrange(3)
        self.workers[slot].stop(timeout=15)
        self.workers[slot] = self.new_worker(slot)

    def scheduler_kill9(self) -> None:
        proc = self.rng.choice(self.schedulers)
        proc.signal(signal.SIGKILL)
        time.sleep(self.rng.uniform(1, 2))
        proc.start()

    def server_kill9(self) -> None:
        assert self.server is not None
        self.server.signal(signal.SIGKILL)
        time.sleep(1)
        self.server.start()

    def redis_outage(self, seconds: float) -> None:
        assert self.redis is not None
        self.redis.stop()
        time.sleep(seconds)
        self.redis.start()
        self.wait(self.redis_answers, 60, "redis did not come back")
        self.redis_back = time.time()

    def redis_short(self) -> None:
        self.redis_outage(self.rng.uniform(1, 3))

    def redis_long(self) -> None:
        self.redis_outage(self.rng.uniform(10, 13))

    def partition(self) -> None:
        assert self.net is not None
        runs = self.running_on(self.workers[0])
        cut = time.time()
        self.net.cut()
        self.time_settling("partition", runs, cut, PARTITION_BOUND)
        time.sleep(self.rng.uniform(20, 40))
        self.net.heal()

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        self.start_all()
        threads = [
            threading.Thread(target=t, daemon=True) for t in (self.trigger_loop, self.sample_loop)
        ]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        time.sleep(5)
        while time.monotonic() - started < self.seconds:
            self.fault()
            time.sleep(self.rng.uniform(2, 6))
        self.stop.set()
        return self.settle_and_check(time.monotonic() - started)

    def settle_and_check(self, chaos_seconds: float) -> dict[str, Any]:
        if self.net:
            self.net.heal()
        for slot, worker in enumerate(self.workers):
            if not worker.alive():
                self.workers[slot] = self.new_worker(slot)
        for proc in [*self.schedulers, self.server]:
            if proc is not None and not proc.alive():
                proc.start()
        with contextlib.suppress(Exception):  # no more scheduled runs
            from prefect_lite.client import get_client

            with get_client(sync_client=True) as client:
                client.pause_deployment(self.scheduled.id)
        settled = self.wait(self.all_final, 240, None)
        report = self.check()
        report.update(
            chaos_seconds=round(chaos_seconds, 1), settled=settled, faults=self.faults,
            triggered=self.triggered, trigger_failures=self.trigger_failures,
            partitions_possible=self.net is not None, directory=str(self.dir),
        )  # fmt: skip
        return report

    def all_final(self) -> bool:
        from prefect_lite.client import get_client

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(limit=10000)
        return all(r.state is not None and r.state.is_final() for r in runs)

    def check(self) -> dict[str, Any]:
        from prefect_lite.client import get_client
        from prefect_lite.storage import keys
        from prefect_lite.storage.connection import get_redis

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(limit=10000)
            histories = {r.id: client.read_flow_run_states(r.id) for r in runs}
        stuck = [str(r.id) for r in runs if r.state is None or not r.state.is_final()]
        multi = [rid for rid, h in histories.items() if sum(s.is_final() for s in h) != 1]
        keyed: dict[tuple[Any, Any], int] = {}
        for r in runs:
            if r.deployment_id == self.scheduled.id:
                key = (r.deployment_id, r.expected_start_time)
                keyed[key] = keyed.get(key, 0) + 1
        r = get_redis()
        slot_keys = [keys.slot_pool(POOL), keys.slot_queue(POOL, "default")]
        slot_keys += [keys.slot_deployment(str(d)) for d in (self.dep.id, self.scheduled.id)]
        overlaps, finished_crashed, bodies = self.read_marks(runs)
        death, part = sorted(self.detect["death"]), sorted(self.detect["partition"])
        invariants = {
            "stuck_or_not_final": len(stuck),
            "not_exactly_one_terminal_state": len(multi),
            "duplicate_deployment_scheduled_time": sum(n - 1 for n in keyed.values() if n > 1),
            "slots_left": sum(int(r.zcard(k)) for k in slot_keys),
            "pool_limit_exceeded_samples": int(self.max_slots > LIMIT),
            "body_run_twice_at_once": overlaps,
            "finished_body_reported_crashed": finished_crashed,
            "death_detection_over_bound": self.over["death"],
            "partition_detection_over_bound": self.over["partition"],
        }
        states: dict[str, int] = {}
        for run in runs:
            states[str(run.state_name)] = states.get(str(run.state_name), 0) + 1
        return {
            "runs": len(runs), "bodies_started": bodies, "final_states": states,
            "max_slots_sampled": self.max_slots, "pool_limit": LIMIT,
            "invariants": invariants, "ok": not any(invariants.values()),
            "detection_seconds": {"death": summary(death), "partition": summary(part)},
            "runs_running_at_fault": self.watched,
        }  # fmt: skip

    def read_marks(self, runs: list[Any]) -> tuple[int, int, int]:
        """(runs whose body ran in two processes at once, runs whose last attempt finished
        but ended Crashed, body attempts started)."""
        overlaps = finished_crashed = started = 0
        by_id = {str(r.id): r for r in runs}
        for path in self.marks.glob("*.log"):
            spans: dict[int, list[float]] = {}
            last_start = last_end = -1.0
            for line in path.read_text().splitlines():
                what, pid_text, at_text = line.split()
                at = float(at_text)
                if what == "crashhook":
                    continue
                span = spans.setdefault(int(pid_text), [at, at])
                span[0], span[1] = min(span[0], at), max(span[1], at)
                if what == "start":
                    started += 1
                    last_start = at
                elif what == "end":
                    last_end = at
            ordered = sorted(spans.values())
            if any(b[0] < a[1] for a, b in itertools.pairwise(ordered)):
                overlaps += 1
            run = by_id.get(path.stem)
            if run is not None and run.state_name == "Crashed" and last_end > last_start >= 0:
                finished_crashed += 1
        return overlaps, finished_crashed, started

    @staticmethod
    def wait(predicate: Any, timeout: float, message: str | None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if predicate():
                    return True
            time.sleep(0.2)
        if message:
            raise RuntimeError(message)
        return False

    def close(self) -> None:
        self.stop.set()
        for proc in [*self.workers, *self.schedulers, self.server, self.redis]:
            if proc is not None:
                proc.stop(timeout=10)
        if self.net:
            self.net.teardown()


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 2),
        "p99": round(p99, 2),
        "max": round(max(values), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-partitions", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--only", nargs="*", default=None, help="fault kinds to pick from")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    chaos = Chaos(args.seconds, seed, partitions=not args.no_partitions, only=args.only)
    try:
        report = chaos.run()
    finally:
        chaos.close()
    report["seed"] = seed
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    if report["ok"]:
        shutil.rmtree(chaos.dir, ignore_errors=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
