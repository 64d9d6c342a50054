"""Run one flow run of a deployment in this process: what a worker's or runner's child does.

``execute_flow_run(flow_run_id, lease, lease_seconds)`` reads the run and its deployment,
sets the run's environment variables (``runtime.run_environment``), gets the code (pull
steps, else the deployment's ``path``), loads the flow from the entrypoint, binds the
parameters, then makes one attempt with the flow engine. Problems before the flow starts
(missing code, a parameter the flow does not take) end the run FAILED with a message that
says which; the process itself stays well.

The run's own states are proposed with the claim's lease (``LeasedClient``): once the
reaper or another worker took the run over, they are rejected as stale. A failed attempt
with retries left ends ``AwaitingRetry`` (scheduled at now + the retry delay) instead of
retrying here; the scheduler re-admits it and a worker claims it again, so retries cross
processes and ``run_count`` counts every attempt.

``install_termination_handler()`` makes SIGTERM stop the run as Cancelled (the engine runs
its on_cancellation hooks); once the signal came, no other final state is proposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
import sysconfig
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

from prefect_lite import _time
from prefect_lite.deployments.policy import ExecutionPolicy
from prefect_lite.engine import recorder
from prefect_lite.engine.extensions import flush_logs
from prefect_lite.engine.flow_engine import FlowRunEngine
from prefect_lite.engine.hooks import run_hooks
from prefect_lite.engine.outage import ride_out
from prefect_lite.engine.scope import engine_client
from prefect_lite.exceptions import (
    Abort,
    EntrypointError,
    ParameterBindError,
    Pause,
    StoreUnavailable,
)
from prefect_lite.runtime import run_environment
from prefect_lite.schemas import Deployment, EmpiricalPolicy, FlowRun
from prefect_lite.states import Cancelled, Failed, State, StateType

logger = logging.getLogger("prefect_lite.deployments.execution")

TERMINATED = "The flow run was cancelled: its process was asked to stop (SIGTERM)."
_FINAL_OR_RETRY = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.SCHEDULED}
)
_terminating = False
_OWN_PACKAGES = frozenset({"prefect_lite", "workers", "scheduler"})


def preload() -> None:
    """Import and set up what running a flow run needs, without connecting to anything: a
    process forked after this starts a run in milliseconds."""
    import prefect_lite.flows
    import prefect_lite.task_runners
    import prefect_lite.tasks  # noqa: F401  (what flow code imports)
    from prefect_lite.deployments import base, steps  # noqa: F401
    from prefect_lite.logging import setup_logging

    engine_client()  # builds the transport (API handlers imported), connects to nothing
    setup_logging()


class ProcessState:
    """What a flow run may change in its process, taken before runs and put back after each
    (a reused process then starts every run alike): working directory, environment,
    ``sys.path``, and modules imported from outside the installed packages (user code, so
    the next run imports it afresh). Installed packages stay imported."""

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        self.path = list(sys.path)
        self.modules = set(sys.modules)
        paths = sysconfig.get_paths()
        kinds = ("stdlib", "platstdlib", "purelib", "platlib")
        self._installed = tuple(str(Path(paths[kind]).resolve()) for kind in kinds)

    def restore(self) -> None:
        global _terminating
        with contextlib.suppress(OSError):
            os.chdir(self.cwd)
        os.environ.clear()
        os.environ.update(self.environ)
        sys.path[:] = self.path
        for name in set(sys.modules) - self.modules:
            if name.partition(".")[0] in _OWN_PACKAGES:
                continue  # ours: other modules hold its classes
            location = getattr(sys.modules.get(name), "__file__", None)
            if location and not str(Path(location).resolve()).startswith(self._installed):
                del sys.modules[name]
        importlib.invalidate_caches()
        _terminating = False


def install_termination_handler() -> None:
    """SIGTERM raises ``Abort`` once in the main thread: the engine ends the run Cancelled."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        global _terminating
        if _terminating:
            return
        _terminating = True
        raise Abort(TERMINATED)

    signal.signal(signal.SIGTERM, on_term)


def terminating() -> bool:
    return _terminating


class LeasedClient:
    """The engine's client for one leased run: its proposals carry the lease (and extend
    it); after SIGTERM its final proposals become Cancelled, with the reason the run's
    CANCELLING state gave. Every other call goes to the wrapped client."""

    def __init__(self, client: Any, flow_run_id: str, lease: str, lease_seconds: float) -> None:
        self._client = client
        self.flow_run_id = flow_run_id
        self.lease = lease
        self.lease_seconds = lease_seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def set_flow_run_state(
        self,
        flow_run_id: uuid.UUID,
        state: State,
        force: bool = False,
        expected_version: int | None = None,
        lease: str | None = None,
        new_lease: str | None = None,
        lease_expiry: float | None = None,
    ) -> Any:
        if str(flow_run_id) == self.flow_run_id:
            lease = self.lease
            lease_expiry = _time.timestamp() + self.lease_seconds
            if _terminating and state.type in _FINAL_OR_RETRY:
                state, force = Cancelled(message=TERMINATED), True
            if state.type is StateType.CANCELLED:  # in place: the engine's hooks see it
                state.message = self._cancel_reason(state)
        return self._client.set_flow_run_state(
            flow_run_id,
            state,
            force=force,
            expected_version=expected_version,
            lease=lease,
            new_lease=new_lease,
            lease_expiry=lease_expiry,
        )

    def _cancel_reason(self, state: State) -> str | None:
        """The message of the CANCELLING state that asked for this (it says why)."""
        try:
            current = self._client.read_flow_run(uuid.UUID(self.flow_run_id)).state
        except Exception:
            return state.message
        if current is not None and current.type is StateType.CANCELLING and current.message:
            return current.message
        return state.message


def load_deployment_flow(deployment: Deployment, policy: ExecutionPolicy | None = None) -> Any:
    """The deployment's flow: pull steps (or its ``path``), then its entrypoint, as
    ``policy`` (default: this process's settings) allows; the working directory becomes
    the code's directory. Steps and entrypoint are refused before anything runs."""
    from prefect_lite.deployments.base import load_flow
    from prefect_lite.deployments.git import clone_cache_dir
    from prefect_lite.deployments.steps import run_steps

    policy = policy or ExecutionPolicy.from_settings()
    if not deployment.entrypoint:
        raise EntrypointError(f"deployment {deployment.full_name!r} has no entrypoint")
    base = Path(deployment.path) if deployment.path else Path.cwd()
    if deployment.pull_steps:
        outputs = run_steps(deployment.pull_steps, policy)
        base = Path(str(outputs.get("directory") or os.getcwd()))
    if not base.is_dir():
        raise EntrypointError(
            f"the code of deployment {deployment.full_name!r} should be in {str(base)!r}, "
            "which is not a directory on this machine"
        )
    base = policy.check_code_directory(base, clone_cache_dir())
    policy.check_entrypoint(deployment.entrypoint, base)
    os.chdir(base)
    return load_flow(deployment.entrypoint, base)


def execute_flow_run(
    flow_run_id: str,
    lease: str,
    lease_seconds: float,
    worker_name: str | None = None,
    policy: ExecutionPolicy | None = None,
) -> State | None:
    """One attempt of a claimed (PENDING, leased) flow run; its state afterwards. What
    code it may run is ``policy`` (default: this process's settings)."""
    client = LeasedClient(engine_client(), flow_run_id, lease, lease_seconds)
    # The run is this process's now (PENDING, leased): ride out a store blip from here on.
    run: FlowRun = ride_out(
        lambda: client.read_flow_run(uuid.UUID(flow_run_id)), "loading the flow run"
    )
    try:
        dep_id = run.deployment_id
        deployment = (
            ride_out(lambda: read_deployment_to_run(client, dep_id), "loading its deployment")
            if dep_id
            else None
        )
        os.environ.update(run_environment(run, deployment))
        if deployment is None:
            raise EntrypointError("the flow run has no deployment to load its flow from")
        flow = load_deployment_flow(deployment, policy)
        parameters = flow.signature.bind((), dict(run.parameters))
    except Abort:
        return _finish(client, run, Cancelled(message=TERMINATED))
    except ParameterBindError as exc:
        return _finish(client, run, Failed(message=f"Invalid parameters: {exc}"))
    except StoreUnavailable:  # already waited out the window: the worker reports the exit
        raise
    except Exception as exc:
        message = f"Could not load the flow of the flow run: {type(exc).__name__}: {exc}"
        return _finish(client, run, Failed(message=message))
    _record_process(client, run, flow, worker_name)
    engine = FlowRunEngine(flow, parameters, flow_run=run, client=client)
    engine.retries_done = run.run_count  # attempts made before this one
    try:
        if engine.create() and engine.begin():
            if flow.isasync:
                asyncio.run(engine.attempt_async())
            else:
                engine.attempt_sync()
    except Pause:
        pass  # suspended: the run waits, this process ends
    except BaseException as exc:
        engine.handle_crash(exc)
        if not isinstance(exc, Abort | Exception):
            raise
    finally:
        recorder.flush()
        flush_logs()
    return engine.state


def _record_process(client: Any, run: FlowRun, flow: Any, worker_name: str | None) -> None:
    """Note where the run executes, and the flow's retry policy: the reaper reads it to
    decide whether a crashed attempt is retried."""
    policy = EmpiricalPolicy(
        retries=flow.retries, retry_delay=flow.retry_delay_seconds, max_retries=flow.retries
    )
    ride_out(
        lambda: client.update_flow_run(
            run.id, empirical_policy=policy, worker_name=worker_name, infrastructure_pid=os.getpid()
        ),
        f"recording where flow run {run.name!r} runs",
    )
    run.__dict__["empirical_policy"] = policy


def _finish(client: LeasedClient, run: FlowRun, state: State) -> State:
    logger.error("Flow run %r: %s", run.name, state.message)
    answer = ride_out(lambda: client.set_flow_run_state(run.id, state), f"ending {run.name!r}")
    flush_logs()
    return answer.state if answer.state is not None else state


def read_deployment_to_run(client: Any, deployment_id: uuid.UUID) -> Deployment:
    """The deployment as stored, credentials unmasked (the pull steps need them)."""
    deployment: Deployment = client.read_deployment(deployment_id, include_secrets=True)
    return deployment


def run_crashed_hooks(flow_run_id: str, policy: ExecutionPolicy | None = None) -> bool:
    """Run the on_crashed hooks of a crashed run (its process is gone); True if the flow
    could be loaded and the run is CRASHED."""
    client = engine_client()
    run: FlowRun = client.read_flow_run(uuid.UUID(flow_run_id))
    if run.state is None or run.state.type is not StateType.CRASHED or not run.deployment_id:
        return False
    deployment = read_deployment_to_run(client, run.deployment_id)
    os.environ.update(run_environment(run, deployment))
    flow = load_deployment_flow(deployment, policy)
    hooks = list(getattr(flow, "on_crashed_hooks", []) or [])
    if hooks:
        from prefect_lite.engine.extensions import flow_logger

        state = run.state
        run_hooks(hooks, (flow, run, state), state, lambda: flow_logger(run, flow))
        flush_logs()
    return True


def main(argv: list[str]) -> int:
    """``python -m prefect_lite.deployments.execution run RUN_ID LEASE LEASE_SECONDS
    [POLICY]`` or ``... hooks RUN_ID [POLICY]`` (``POLICY``: ``ExecutionPolicy`` as JSON,
    default the settings): what a runner's child process does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    if argv[:1] == ["hooks"] and len(argv) in (2, 3):
        run_crashed_hooks(argv[1], _policy_argument(argv[2:]))
        return 0
    if argv[:1] != ["run"] or len(argv) not in (4, 5):
        print("usage: run RUN_ID LEASE LEASE_SECONDS [POLICY] | hooks RUN_ID [POLICY]",
              file=sys.stderr)  # fmt: skip
        return 2
    install_termination_handler()
    execute_flow_run(argv[1], argv[2], float(argv[3]), policy=_policy_argument(argv[4:]))
    return 0


def _policy_argument(rest: list[str]) -> ExecutionPolicy | None:
    return ExecutionPolicy.from_json(rest[0]) if rest else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
