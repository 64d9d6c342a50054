"""The flow engine: one flow run from Pending to its final state.

``run_flow(flow, parameters, flow_run=None, ...)`` runs a new flow run, or an existing
record (a worker's) when ``flow_run``/``flow_run_id`` is given. Steps: validate the
parameters (a ``ParameterTypeError`` fails the run before the body) -> create the run
(a subflow also records a task run in its parent, which ``parent_task_run_id`` points
at) -> propose Running (a rejection is respected: a run cancelled meanwhile does not
start) -> call the function inside a ``FlowRunContext`` with a fresh task runner ->
wait for submitted task runs -> flush their recorded changes -> propose the final state
(from the return value, the exception, the timeout or the retry policy) -> hooks.

Flow run states are proposed synchronously through the client (a handful per run, in
``flow_run.FlowRunLifecycle``); task run states go through the background recorder.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from prefect_lite.context import FlowRunContext, TaskRunContext, tags
from prefect_lite.engine import caching, recorder
from prefect_lite.engine.cancellation import get_watcher
from prefect_lite.engine.flow_run import FAILED, NOTSET, RUNNING, FlowRunLifecycle
from prefect_lite.engine.flow_support import should_log_prints
from prefect_lite.engine.inputs import visit_futures, wait_future
from prefect_lite.engine.local_lease import LocalLeaseClient
from prefect_lite.engine.outcomes import (
    awaiting_retry,
    crashed_state,
    failed_state,
    new_state,
    return_value_to_state,
)
from prefect_lite.engine.scope import SCOPE_KEY, FlowRunScope, engine_client
from prefect_lite.engine.signals import crash_on_sigterm
from prefect_lite.engine.timeouts import Deadline
from prefect_lite.exceptions import Abort, FlowRunTimeoutError, Pause
from prefect_lite.schemas import FlowRun
from prefect_lite.states import State, StateType

_STOPPED = frozenset({StateType.CANCELLING, StateType.CANCELLED})


class FlowRunEngine(FlowRunLifecycle):
    """Runs one flow run; ``state`` is its current state, ``result()`` its outcome."""

    def begin(self) -> bool:
        """Enter Running (or Retrying); False if the orchestrator says the run must not."""
        name = "Retrying" if self.state.name == "AwaitingRetry" else "Running"
        if self.propose(new_state(RUNNING, name)):
            self._log().info(
                "%s flow run %r for flow %r",
                "Retrying" if name == "Retrying" else "Beginning",
                self.flow_run.name if self.flow_run else "?",
                self.flow.name,
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
        if state.type is StateType.COMPLETED and self.flow.persist_result:
            try:
                state = caching.persist_flow_result(self.flow, state)
            except Exception as exc:  # e.g. PayloadTooLarge: the run fails with it
                self._raised = exc
                self._finish(failed_state(exc, "Could not persist the result:", self._details()))
                return None
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
        if isinstance(exc, Pause):  # suspended: the process ends, the run is not finished
            if exc.state is not None:
                self.state = exc.state
            return
        if self.flow_run is None or self.state.is_final():
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

    # ------------------------------------------------------------------------ drivers
    def _lease_locally(self) -> LocalLeaseClient | None:
        """The outermost run of a process that is no worker's holds a lease of its own."""
        if self.parent_scope is not None or getattr(self.client, "lease", None) is not None:
            return None
        local = LocalLeaseClient(self.client)
        self.client = local
        return local

    def run_sync(self) -> State:
        local = self._lease_locally()
        try:
            with crash_on_sigterm(self.parent_scope is None, self.handle_crash):
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
            if local is not None:
                local.release()
        return self.state

    async def run_async(self) -> State:
        local = self._lease_locally()
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
            if local is not None:
                local.release()
        return self.state

    def result(self, raise_on_failure: bool = True) -> Any:
        state = self.state
        if state.type in _STOPPED:
            return state.result(raise_on_failure=raise_on_failure)
        if self._returned is not NOTSET and not isinstance(self._returned, State):
            return self._returned
        if self._raised is not None:
            if raise_on_failure:
                raise self._raised
            return self._raised
        return state.result(raise_on_failure=raise_on_failure)


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
