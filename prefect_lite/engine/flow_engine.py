"""The flow engine: one flow run from Pending to its final state.

``run_flow(flow, parameters, flow_run=None, ...)`` runs a new flow run, or an existing
record (a worker's) when ``flow_run``/``flow_run_id`` is given. Steps: validate the
parameters (a ``ParameterTypeError`` fails the run before the body) -> create the run
(a subflow also records a task run in its parent, which ``parent_task_run_id`` points
at) -> propose Running (a rejection is respected: a run cancelled meanwhile does not
start) -> call the function inside a ``FlowRunContext`` with a fresh task runner ->
wait for submitted task runs -> flush their recorded changes -> propose the final state
(from the return value, the exception, the timeout or the retry policy) -> hooks.

Flow run states are proposed synchronously through the client (a handful per run);
task run states go through the background recorder.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from prefect_lite.context import FlowRunContext, TaskRunContext, current_tags, tags
from prefect_lite.engine import extensions, recorder
from prefect_lite.engine.cancellation import get_watcher
from prefect_lite.engine.flow_support import SubflowLink, resolve_wait_for, should_log_prints
from prefect_lite.engine.hooks import hook_kind, run_hooks
from prefect_lite.engine.inputs import visit_futures, wait_future
from prefect_lite.engine.outcomes import (
    awaiting_retry,
    crashed_state,
    failed_state,
    new_state,
    return_value_to_state,
    run_details,
)
from prefect_lite.engine.parameters import jsonable_parameters, render_run_name
from prefect_lite.engine.scope import SCOPE_KEY, FlowRunScope, current_scope, engine_client
from prefect_lite.engine.timeouts import Deadline
from prefect_lite.exceptions import (
    Abort,
    FlowRunTimeoutError,
    ParameterTypeError,
    Pause,
    UpstreamTaskError,
)
from prefect_lite.schemas import EmpiricalPolicy, FlowRun
from prefect_lite.states import State, StateType

RUNNING, COMPLETED, FAILED = StateType.RUNNING, StateType.COMPLETED, StateType.FAILED
_STOPPED = frozenset({StateType.CANCELLING, StateType.CANCELLED})
_NOTSET: Any = object()


class FlowRunEngine:
    """Runs one flow run; ``state`` is its current state, ``result()`` its outcome."""

    def __init__(
        self,
        flow: Any,
        parameters: dict[str, Any] | None,
        flow_run: FlowRun | None = None,
        wait_for: Any = None,
        client: Any = None,
    ) -> None:
        self.flow = flow
        self.parameters = dict(parameters or {})
        self.flow_run = flow_run
        self.wait_for = wait_for
        self.client = client or engine_client()
        self.parent_scope = current_scope()
        self.link: SubflowLink | None = None
        self.state: State = new_state(StateType.PENDING, "Pending")
        self.scope: FlowRunScope | None = None
        self.retries_done = 0
        self._returned: Any = _NOTSET
        self._raised: BaseException | None = None
        self._logger: Any = None

    # ----------------------------------------------------------------------- creation
    def create(self) -> bool:
        """Validate, create (or adopt) the run; False if it already ended (bad input)."""
        flow = self.flow
        problem: BaseException | None = None
        if flow.should_validate_parameters:
            try:
                self.parameters = flow.signature.validate(self.parameters, "Flow run")
            except ParameterTypeError as exc:
                problem = exc
        name = None
        if isinstance(flow.flow_run_name, str) and problem is None:
            name = render_run_name(flow.flow_run_name, self.parameters, "flow_run_name")
        if self.flow_run is None:
            self._create_record(name)
        elif name is not None and name != self.flow_run.name:
            self._rename(name)
        assert self.flow_run is not None
        if self.flow_run.state is not None:
            self.state = self.flow_run.state
        if problem is not None:
            self._raised = problem
            message = f"Validation of flow parameters failed with error: {problem}"
            self._log().error(message)
            self._finish(new_state(FAILED, "Failed", message, problem, self._details()))
            return False
        if callable(flow.flow_run_name):
            with FlowRunContext(flow=flow, flow_run=self.flow_run, parameters=self.parameters):
                self._rename(render_run_name(flow.flow_run_name, self.parameters, "flow_run_name"))
        return True

    def _create_record(self, name: str | None) -> None:
        flow, parent = self.flow, self.parent_scope
        parent_task_run_id = None
        if parent is not None:
            self.link = SubflowLink.create(flow, self.parameters, self.wait_for, parent)
            parent_task_run_id = self.link.task_run_id
        self.flow_run = self.client.create_flow_run(
            flow.name,
            name=name,
            parameters=jsonable_parameters(self.parameters),
            tags=sorted(current_tags()),
            parent_task_run_id=parent_task_run_id,
            parent_flow_run_id=parent.flow_run_id if parent is not None else None,
            state=new_state(StateType.PENDING, "Pending"),
            empirical_policy=_policy(flow),
        )

    def _rename(self, name: str) -> None:
        assert self.flow_run is not None
        self.client.update_flow_run(self.flow_run.id, name=name)
        self.flow_run.__dict__["name"] = name

    # ------------------------------------------------------------------------- states
    def propose(self, state: State, force: bool = False) -> bool:
        """Propose a state; True if accepted as proposed. Otherwise ``self.state`` is what
        the orchestrator answered (the run's current state, or what it turned into)."""
        run = self.flow_run
        assert run is not None
        answer = self.client.set_flow_run_state(run.id, state, force=force)
        current = answer.state
        accepted = answer.status == "ACCEPT" and (
            current is None or (current.type == state.type and current.name == state.name)
        )
        new = state if accepted or current is None else current
        self.state = new
        fields: dict[str, Any] = {"state": new, "state_type": new.type, "state_name": new.name}
        if accepted and new.type is RUNNING:
            fields["run_count"] = run.run_count + 1
            if run.start_time is None:
                fields["start_time"] = new.timestamp
        elif new.is_final():
            fields["end_time"] = new.timestamp
        run.__dict__.update(fields)
        if self.link is not None:
            self.link.mirror(new)
        return accepted

    def _details(self) -> Any:
        return run_details(None, self.flow_run.id if self.flow_run is not None else None)

    def begin(self) -> bool:
        """Enter Running (or Retrying); False if the orchestrator says the run must not."""
        name = "Retrying" if self.state.name == "AwaitingRetry" else "Running"
        if self.propose(new_state(RUNNING, name)):
            self._log().info(
                "%s flow run %r",
                "Retrying" if name == "Retrying" else "Beginning",
                self.flow_run.name if self.flow_run else "?",
            )
            self._run_hooks(self.flow.on_running_hooks)
            return True
        current = self.state
        if current.type is StateType.CANCELLING:
            self._finish(
                new_state(StateType.CANCELLED, "Cancelled", current.message or "Cancelled")
            )
        elif current.is_final():
            self._log().info("Flow run is already %s; not running it", current.name)
        return False

    # ----------------------------------------------------------------------- attempts
    def _enter_run(self) -> tuple[Any, ...]:
        flow, run = self.flow, self.flow_run
        assert run is not None
        self.scope = scope = FlowRunScope(run.id, self.client)
        runner = flow.task_runner.duplicate()
        ctx = FlowRunContext(
            flow=flow,
            flow_run=run,
            parameters=self.parameters,
            task_runner=runner,
            client=self.client,
            log_prints=should_log_prints(flow),
            extra={SCOPE_KEY: scope},
        )
        tag_cm = tags(*run.tags)
        tag_cm.__enter__()
        ctx.__enter__()
        task_token = TaskRunContext.__var__.set(None)  # tasks inside start at this flow
        runner.__enter__()
        get_watcher().watch(scope)
        return tag_cm, ctx, task_token, runner

    def _exit_run(self, entered: tuple[Any, ...], interrupt: BaseException | None = None) -> None:
        tag_cm, ctx, task_token, runner = entered
        try:
            runner.__exit__(type(interrupt) if interrupt else None, interrupt, None)
        finally:
            if self.scope is not None:
                get_watcher().unwatch(self.scope)
            TaskRunContext.__var__.reset(task_token)
            ctx.__exit__(None, None, None)
            tag_cm.__exit__(None, None, None)

    def attempt_sync(self) -> float | None:
        entered = self._enter_run()
        interrupt: BaseException | None = None
        try:
            args, kwargs = self.flow.signature.call_args(self.parameters)
            deadline = None
            try:
                if self.flow.timeout_seconds is None:
                    value = self.flow.fn(*args, **kwargs)
                else:
                    deadline = Deadline(
                        self.flow.timeout_seconds, FlowRunTimeoutError, self._timeout_message()
                    )
                    with deadline:
                        value = self.flow.fn(*args, **kwargs)
                entered[3].wait_all()
                value = visit_futures(value, wait_future)
            except FlowRunTimeoutError as exc:
                entered[3].wait_all()
                if deadline is not None and deadline.fired:
                    return self.handle_timeout(exc)
                return self.handle_exception(exc)
            except Abort as exc:
                entered[3].wait_all()
                return self.handle_cancellation(str(exc))
            except Exception as exc:
                entered[3].wait_all()
                return self.handle_exception(exc)
            return self.handle_success(value)
        except BaseException as exc:
            interrupt = exc
            raise
        finally:
            self._exit_run(entered, interrupt)

    async def attempt_async(self) -> float | None:
        entered = self._enter_run()
        interrupt: BaseException | None = None
        runner = entered[3]
        try:
            args, kwargs = self.flow.signature.call_args(self.parameters)
            timeout = self.flow.timeout_seconds
            try:
                if timeout is None:
                    value = await self.flow.fn(*args, **kwargs)
                else:
                    async with asyncio.timeout(timeout) as cm:
                        value = await self.flow.fn(*args, **kwargs)
                await asyncio.to_thread(runner.wait_all)
                value = visit_futures(value, wait_future)
            except TimeoutError as exc:
                await asyncio.to_thread(runner.wait_all)
                if timeout is not None and cm.expired():
                    return self.handle_timeout(FlowRunTimeoutError(self._timeout_message()))
                return self.handle_exception(exc)
            except Abort as exc:
                return self.handle_cancellation(str(exc))
            except Exception as exc:
                await asyncio.to_thread(runner.wait_all)
                return self.handle_exception(exc)
            return self.handle_success(value)
        except BaseException as exc:
            interrupt = exc
            raise
        finally:
            self._exit_run(entered, interrupt)

    # ----------------------------------------------------------------------- outcomes
    def handle_success(self, value: Any) -> float | None:
        if self._cancelled():
            return self.handle_cancellation(self.scope.cancel_reason if self.scope else None)
        state = return_value_to_state(value, self._details())
        if state.type is FAILED and self._may_retry():
            return self._schedule_retry(state.message)
        self._returned = value
        self._finish(state)
        return None

    def handle_exception(self, exc: BaseException) -> float | None:
        if self._cancelled():
            return self.handle_cancellation(self.scope.cancel_reason if self.scope else None)
        self._log().error("Encountered exception during execution: %r", exc, exc_info=exc)
        if self._may_retry():
            return self._schedule_retry(repr(exc))
        self._raised = exc
        self._finish(failed_state(exc, "Flow run encountered an exception:", self._details()))
        return None

    def handle_timeout(self, exc: FlowRunTimeoutError) -> float | None:
        message = self._timeout_message()
        self._log().error(message)
        if self._may_retry():
            return self._schedule_retry(message)
        self._raised = exc
        self._finish(new_state(FAILED, "TimedOut", message, exc, self._details()))
        return None

    def handle_cancellation(self, reason: str | None) -> float | None:
        self._finish(new_state(StateType.CANCELLED, "Cancelled", reason or "Cancelled"), force=True)
        return None

    def handle_crash(self, exc: BaseException) -> None:
        if self.flow_run is None or isinstance(exc, Pause) or self.state.is_final():
            return
        if isinstance(exc, Abort):
            self.handle_cancellation(str(exc))
            return
        state = crashed_state(exc, self._details())
        self._log().error("Crash detected! %s", state.message)
        self._raised = exc
        self._finish(state, force=True)

    def _cancelled(self) -> bool:
        return self.scope is not None and self.scope.cancel_reason is not None

    def _may_retry(self) -> bool:
        return self.retries_done < self.flow.retries

    def _schedule_retry(self, reason: str | None) -> float:
        self.retries_done += 1
        delay = float(self.flow.retry_delay_seconds)
        self._log().info(
            "Flow run failed (%s) - retry %s/%s will start %s",
            reason,
            self.retries_done,
            self.flow.retries,
            f"{delay} second(s) from now" if delay > 0 else "immediately",
        )
        recorder.flush()
        self.propose(awaiting_retry(delay), force=True)
        return delay

    def _finish(self, state: State, force: bool = False) -> None:
        recorder.flush()  # task runs are in the store before the flow run's final state
        if not self.propose(state, force=force) and not self.state.is_final():
            self.propose(state, force=True)
        final = self.state
        if final is not state and final.is_final():
            self._log().info("The orchestrator ended the flow run as %s", final.name)
        kind = hook_kind(final)
        if kind is not None and kind != "on_running":
            self._run_hooks(getattr(self.flow, f"{kind}_hooks"))
        self._log().info("Finished in state %r", final)

    def _run_hooks(self, hooks: list[Any]) -> None:
        if hooks:
            run_hooks(hooks, (self.flow, self.flow_run, self.state), self.state, self._log)

    def _timeout_message(self) -> str:
        return f"Flow run exceeded timeout of {self.flow.timeout_seconds} second(s)"

    def _log(self) -> Any:
        if self._logger is None:
            self._logger = extensions.flow_logger(self.flow_run, self.flow)
        return self._logger

    # ------------------------------------------------------------------------ drivers
    def _prepare(self) -> bool:
        if not self.create():
            return False
        if self.wait_for is not None:
            try:
                resolve_wait_for(self.wait_for)
            except UpstreamTaskError as exc:
                self._raised = exc
                self.propose(new_state(StateType.PENDING, "NotReady", str(exc)), force=True)
                self._finish(new_state(FAILED, "Failed", str(exc), exc, self._details()))
                return False
        return True

    def run_sync(self) -> State:
        try:
            if self._prepare():
                while self.begin():
                    delay = self.attempt_sync()
                    if delay is None:
                        break
                    if delay > 0:
                        time.sleep(delay)
        except BaseException as exc:
            self.handle_crash(exc)
            raise
        finally:
            self._close()
        return self.state

    async def run_async(self) -> State:
        try:
            if self._prepare():
                while self.begin():
                    delay = await self.attempt_async()
                    if delay is None:
                        break
                    if delay > 0:
                        await asyncio.sleep(delay)
        except BaseException as exc:
            self.handle_crash(exc)
            raise
        finally:
            self._close()
        return self.state

    def _close(self) -> None:
        if self.parent_scope is None:
            recorder.flush()
            extensions.flush_logs()

    def result(self, raise_on_failure: bool = True) -> Any:
        state = self.state
        if state.type in _STOPPED:
            return state.result(raise_on_failure=raise_on_failure)
        if self._returned is not _NOTSET and not isinstance(self._returned, State):
            return self._returned
        if self._raised is not None:
            if raise_on_failure:
                raise self._raised
            return self._raised
        return state.result(raise_on_failure=raise_on_failure)


def _policy(flow: Any) -> EmpiricalPolicy:
    policy: EmpiricalPolicy | None = flow._engine_cache.get("policy")
    if policy is None:
        policy = flow._engine_cache["policy"] = EmpiricalPolicy(
            retries=flow.retries, retry_delay=flow.retry_delay_seconds, max_retries=flow.retries
        )
    return policy


def run_flow(
    flow: Any,
    parameters: dict[str, Any] | None = None,
    flow_run: FlowRun | None = None,
    wait_for: Any = None,
    return_type: str = "result",
    client: Any = None,
    flow_run_id: uuid.UUID | str | None = None,
) -> Any:
    """Run ``flow``: its result, or its final State with ``return_type="state"``.

    With ``flow_run`` (or ``flow_run_id``) the existing record is run instead of a new one,
    with its stored parameters unless ``parameters`` is given. For an async flow this
    returns a coroutine (``asyncio.run`` it where no loop is running).
    """
    client = client or engine_client()
    if flow_run is None and flow_run_id is not None:
        flow_run = client.read_flow_run(uuid.UUID(str(flow_run_id)))
    if flow_run is not None:
        raw = dict(flow_run.parameters) if parameters is None else dict(parameters)
        parameters = flow.signature.bind((), raw)
    engine = FlowRunEngine(flow, parameters, flow_run=flow_run, wait_for=wait_for, client=client)
    if flow.isasync:
        return _run_and_return_async(engine, return_type)
    engine.run_sync()
    return engine.state if return_type == "state" else engine.result()


async def _run_and_return_async(engine: FlowRunEngine, return_type: str) -> Any:
    await engine.run_async()
    return engine.state if return_type == "state" else engine.result()
