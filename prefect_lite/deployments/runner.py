"""``serve(*deployments)`` and ``flow.serve(...)``: run deployments from this process.

A ``Runner`` registers its deployments without a work pool (so no worker takes their runs)
and then, every ``poll_seconds``: claims their runs that are due (PENDING under a lease,
through the client, versioned: another runner cannot take the same run), starts each in
its own process (``python -m prefect_lite.deployments.execution``), renews the leases of
the runs it executes (a run found CANCELLING gets SIGTERM, SIGKILL after a grace period),
and records runs whose process died without a final state (CRASHED or AwaitingRetry;
on_crashed hooks then run in a fresh process). Everything goes through the client, so a
runner works against a remote API too.

Scheduled runs of served deployments are made by the scheduler service (``prefect-lite
server start`` runs it, or ``prefect-lite scheduler start``); runs triggered on demand
are picked up without it. On Ctrl-C or SIGTERM the runner stops its runs (they end
Cancelled) and, with ``pause_on_shutdown`` (the default), pauses its deployments.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from prefect_lite import _time
from prefect_lite.client import get_client
from prefect_lite.deployments.base import RunnerDeployment, is_flow, to_deployment
from prefect_lite.deployments.policy import ExecutionPolicy
from prefect_lite.settings import get_settings
from prefect_lite.states import Pending, StateType

logger = logging.getLogger("prefect_lite.deployments.runner")

CANCEL_GRACE_SECONDS = 1.0
SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass
class _Process:
    run_id: uuid.UUID
    lease: str
    proc: subprocess.Popen[bytes]
    cancel_sent_at: float | None = None


class Runner:
    """Serves deployments from this process; ``run_once()`` is one pass of the loop."""

    def __init__(
        self,
        limit: int | None = None,
        poll_seconds: float = 0.5,
        name: str | None = None,
        policy: ExecutionPolicy | None = None,
    ) -> None:
        self.limit = limit
        # What the runs' processes may execute: the settings, plus this runner's own code.
        self.policy = policy or ExecutionPolicy.from_settings()
        self.poll_seconds = poll_seconds
        self.name = name or "runner"
        self.deployment_ids: list[uuid.UUID] = []
        self.deployments: list[RunnerDeployment] = []
        self.running: dict[uuid.UUID, _Process] = {}
        self.stop_event = threading.Event()
        self.client: Any = get_client(sync_client=True)

    @property
    def lease_seconds(self) -> float:
        return get_settings().lease_seconds

    def add_deployment(self, deployment: RunnerDeployment) -> uuid.UUID:
        """Register the deployment for this runner (no work pool: nobody else runs it)."""
        served = deployment.model_copy(update={"work_pool_name": None, "work_queue_name": None})
        deployment_id = served.apply()
        self.policy = self.policy.trusting(_own_code_paths(served))
        self.deployment_ids.append(deployment_id)
        self.deployments.append(served)
        return deployment_id

    # ------------------------------------------------------------------ the loop
    def run_once(self) -> list[uuid.UUID]:
        """Settle ended processes, renew leases, claim and start due runs (their ids)."""
        self.settle_exits()
        self.renew_leases()
        return self.claim_and_start()

    def claim_and_start(self) -> list[uuid.UUID]:
        free = None if self.limit is None else self.limit - len(self.running)
        if (free is not None and free <= 0) or not self.deployment_ids:
            return []
        due = self.client.read_due_flow_runs(self.deployment_ids, limit=free or 100)
        started = []
        for run in due:
            token = uuid.uuid4().hex
            answer = self.client.set_flow_run_state(
                run.id,
                Pending(),
                expected_version=run.version,
                new_lease=token,
                lease_expiry=_time.timestamp() + self.lease_seconds,
            )
            if answer.status == "ACCEPT" and answer.state and answer.state.name == "Pending":
                self.running[run.id] = _Process(run.id, token, self._spawn("run", run.id, token))
                started.append(run.id)
        return started

    def _spawn(self, kind: str, run_id: uuid.UUID, lease: str = "") -> subprocess.Popen[bytes]:
        args = [kind, str(run_id)]
        if kind == "run":
            args += [lease, repr(self.lease_seconds)]
        args.append(self.policy.to_json())
        command = [sys.executable, "-m", "prefect_lite.deployments.execution", *args]
        return subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def renew_leases(self) -> None:
        if not self.running:
            return
        held = list(self.running.values())
        answers = self.client.renew_flow_run_leases(
            [(p.run_id, p.lease) for p in held], self.lease_seconds
        )
        for process, answer in zip(held, answers, strict=True):
            if answer == "CANCELLING" and process.cancel_sent_at is None:
                self._terminate(process)
            elif answer == "LOST":
                process.proc.kill()
        now = _time.monotonic()
        for process in held:
            sent = process.cancel_sent_at
            overdue = sent is not None and now - sent > CANCEL_GRACE_SECONDS
            if overdue and process.proc.poll() is None:
                process.proc.kill()

    def _terminate(self, process: _Process) -> None:
        process.cancel_sent_at = _time.monotonic()
        if process.proc.poll() is None:
            process.proc.send_signal(signal.SIGTERM)

    def settle_exits(self) -> None:
        for run_id, process in list(self.running.items()):
            code = process.proc.poll()
            if code is None:
                continue
            del self.running[run_id]
            how = _describe(code)
            outcome = self.client.report_flow_run_exit(
                run_id, process.lease, how, cancelled=process.cancel_sent_at is not None
            )
            if outcome is not None and outcome.type is StateType.CRASHED:
                self._spawn("hooks", run_id).wait()

    # ------------------------------------------------------------------ start, stop
    def start(self) -> None:
        """Loop until ``stop()`` (or SIGINT/SIGTERM when run in the main thread)."""
        previous = _install_signals(self.stop) if _in_main_thread() else {}
        try:
            while not self.stop_event.is_set():
                try:
                    self.run_once()
                except Exception:  # one failed pass (e.g. Redis away) is retried
                    logger.exception("runner pass failed")
                self.stop_event.wait(self.poll_seconds)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.shutdown()

    def stop(self, *_: Any) -> None:
        self.stop_event.set()

    def shutdown(self) -> None:
        """Stop the runs still running (they end Cancelled) and settle them."""
        for process in self.running.values():
            self._terminate(process)
        deadline = _time.monotonic() + SHUTDOWN_GRACE_SECONDS
        for process in self.running.values():
            try:
                process.proc.wait(max(0.1, deadline - _time.monotonic()))
            except subprocess.TimeoutExpired:
                process.proc.kill()
                process.proc.wait()
        self.settle_exits()

    def pause_deployments(self) -> None:
        for deployment_id in self.deployment_ids:
            self.client.pause_deployment(deployment_id)


def _own_code_paths(deployment: RunnerDeployment) -> list[str]:
    """Where a deployment this runner registered keeps its code: its path and the
    directory of its entrypoint's file (a script run from elsewhere has an absolute one)."""
    paths = [deployment.path] if deployment.path else []
    location = (deployment.entrypoint or "").rpartition(":")[0]
    if location.endswith(".py") or "/" in location:
        paths.append(str((Path(deployment.path or ".") / location).resolve().parent))
    return paths


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install_signals(stop: Any) -> dict[int, Any]:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop()

    return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


# ----------------------------------------------------------------------------- serve


def _deployments_from(items: tuple[Any, ...], options: dict[str, Any]) -> list[RunnerDeployment]:
    """``serve(flow, "name", cron=...)`` (what ``flow.serve(...)`` passes) or
    ``serve(deployment, ...)``."""
    found: list[RunnerDeployment] = []
    queue = list(items)
    while queue:
        item = queue.pop(0)
        if isinstance(item, RunnerDeployment):
            found.append(item)
        elif is_flow(item):
            name = queue.pop(0) if queue and isinstance(queue[0], str) else None
            name = name or options.pop("name", None) or item.name
            found.append(to_deployment(item, name, **options))
            options = {}
        else:
            raise TypeError(f"serve() takes flows and deployments, not {type(item).__name__}")
    if not found:
        raise TypeError("serve() needs at least one flow or deployment")
    return found


def serve(
    *items: Any,
    limit: int | None = None,
    pause_on_shutdown: bool = True,
    print_starting_message: bool = True,
    poll_seconds: float = 0.5,
    **flow_options: Any,
) -> None:
    """Serve deployments (or a flow, with ``to_deployment`` options) until interrupted."""
    runner = _prepare(items, flow_options, limit, poll_seconds, print_starting_message)
    try:
        runner.start()
    finally:
        if pause_on_shutdown:
            runner.pause_deployments()


async def aserve(
    *items: Any,
    limit: int | None = None,
    pause_on_shutdown: bool = True,
    print_starting_message: bool = True,
    poll_seconds: float = 0.5,
    **flow_options: Any,
) -> None:
    """``serve`` for async code: the runner loops in a thread; cancelling stops it."""
    runner = _prepare(items, flow_options, limit, poll_seconds, print_starting_message)
    try:
        await asyncio.to_thread(runner.start)
    finally:
        runner.stop()
        if pause_on_shutdown:
            runner.pause_deployments()


def _prepare(
    items: tuple[Any, ...],
    flow_options: dict[str, Any],
    limit: int | None,
    poll_seconds: float,
    print_starting_message: bool,
) -> Runner:
    deployments = _deployments_from(items, dict(flow_options))
    runner = Runner(limit=limit, poll_seconds=poll_seconds)
    for deployment in deployments:
        runner.add_deployment(deployment)
    if print_starting_message:
        names = ", ".join(f"'{d.full_name}'" for d in runner.deployments)
        print(f"Serving {names}. Trigger runs with `prefect-lite deployment run <name>`;")
        print("scheduled runs come from the scheduler service (`prefect-lite server start`).")
    return runner
