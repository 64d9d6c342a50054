"""The task engine: runs one task run from Pending to its final state.

Steps (Prefect's order): ``create`` the record (Pending) -> ``prepare`` (wait for and
resolve upstream futures; an upstream failure ends the run NotReady -> Failed without
running it; render a run-name template; look up the cache) -> ``begin_attempt``
(Running, or Retrying) -> call the function -> ``handle_success`` / ``handle_exception``
/ ``handle_timeout`` (retry: AwaitingRetry -> Retrying, or finish) -> hooks.
An interrupt (KeyboardInterrupt, SystemExit, termination signal) ends it Crashed and is
re-raised.

The record, input resolution and state changes live in ``task_run.TaskRunLifecycle``;
this module adds the attempts, retries and drivers. ``run_sync`` drives sync functions,
``run_async`` awaits async ones; both share every step but the call.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from prefect_lite import _time
from prefect_lite.engine import recorder
from prefect_lite.engine.outcomes import (
    awaiting_retry,
    crashed_state,
    failed_state,
    new_state,
    return_value_to_state,
)
from prefect_lite.engine.task_run import COMPLETED, FINAL, NOTSET, RUNNING, TaskRunLifecycle
from prefect_lite.engine.timeouts import Deadline
from prefect_lite.exceptions import (
    Abort,
    FlowRunTimeoutError,
    Pause,
    TaskRunTimeoutError,
)
from prefect_lite.retries import delay_for_retry
from prefect_lite.states import State, StateType


class TaskRunEngine(TaskRunLifecycle):
    """Runs one task run; ``state`` is its current state, ``result()`` its outcome."""

    # --------------------------------------------------------------------------- attempts
    def begin_attempt(self) -> None:
        scope = self.scope
        if scope is not None and scope.cancel_reason is not None:
            raise Abort(scope.cancel_reason)
        if self.state.type is not RUNNING:  # an immediate retry is already Retrying
            name = "Retrying" if self.state.name == "AwaitingRetry" else "Running"
            self.set_state(new_state(RUNNING, name), force=name == "Retrying")
        if self.task.on_running_hooks:
            self._run_hooks(self.task.on_running_hooks)

    def attempt_sync(self) -> float | None:
        """Call the function once; the delay before a retry, or None when finished."""
        ctx = self._context()
        ctx.__enter__()
        try:
            args, kwargs = self.task.signature.call_args(self.parameters)
            timeout = self.task.timeout_seconds
            deadline = None
            try:
                if timeout is None:
                    value = self.task.fn(*args, **kwargs)
                else:
                    deadline = Deadline(timeout, TaskRunTimeoutError, _timeout_message(timeout))
                    with deadline:
                        value = self.task.fn(*args, **kwargs)
            except TaskRunTimeoutError as exc:
                if deadline is not None and deadline.fired:
                    return self.handle_timeout(exc)
                return self.handle_exception(exc)
            except Exception as exc:
                return self.handle_exception(exc)
            return self.handle_success(value)
        finally:
            ctx.__exit__(None, None, None)

    async def attempt_async(self) -> float | None:
        ctx = self._context()
        ctx.__enter__()
        try:
            args, kwargs = self.task.signature.call_args(self.parameters)
            timeout = self.task.timeout_seconds
            try:
                if timeout is None:
                    value = await self.task.fn(*args, **kwargs)
                else:
                    async with asyncio.timeout(timeout) as cm:
                        value = await self.task.fn(*args, **kwargs)
            except TimeoutError as exc:
                if timeout is not None and cm.expired():
                    return self.handle_timeout(TaskRunTimeoutError(_timeout_message(timeout)))
                return self.handle_exception(exc)
            except Exception as exc:
                return self.handle_exception(exc)
            return self.handle_success(value)
        finally:
            ctx.__exit__(None, None, None)

    # ---------------------------------------------------------------------------- outcomes
    def handle_success(self, value: Any) -> float | None:
        details = self._details()
        if isinstance(value, State):
            state = return_value_to_state(value, details)
            if state.type is StateType.FAILED and self._may_retry(state):
                return self._schedule_retry(state)
        else:
            state = new_state(COMPLETED, "Completed", None, value, details)
        if self.cache_key is not None:
            details.cache_key = self.cache_key
            if self.task.cache_expiration is not None:
                details.cache_expiration = _time.now() + self.task.cache_expiration
        self._returned = value
        if state.type is COMPLETED and self.scope is not None:
            self.scope.link_result(value, details.task_run_id)
        self._finish(state, persist=state.type is COMPLETED)
        return None

    def handle_exception(self, exc: BaseException) -> float | None:
        if not isinstance(exc, FlowRunTimeoutError) and self._may_retry(exc):
            return self._schedule_retry(exc)
        self._raised = exc
        self._logger().error(
            "Task run failed with exception: %r - %s",
            exc,
            "Retries are exhausted" if self.task.retries else "No retries configured",
            exc_info=exc,
        )
        self._finish(failed_state(exc, "Task run encountered an exception", self._details()))
        return None

    def handle_timeout(self, exc: TaskRunTimeoutError) -> float | None:
        if self._may_retry(exc):
            return self._schedule_retry(exc)
        self._raised = exc
        message = _timeout_message(self.task.timeout_seconds)
        self._logger().error(message)
        self._finish(new_state(StateType.FAILED, "TimedOut", message, exc, self._details()))
        return None

    def handle_crash(self, exc: BaseException) -> None:
        if self.task_run is None or isinstance(exc, Pause) or self.state.type in FINAL:
            return
        if not self._created:
            self._record_create()
        self._raised = exc
        if isinstance(exc, Abort):
            state = new_state(StateType.CANCELLED, "Cancelled", str(exc) or "Cancelled", exc)
        else:
            state = crashed_state(exc, self._details())
            self._logger().error("Crash detected! %s", state.message)
        self.set_state(state, force=True)

    def _may_retry(self, exc_or_state: BaseException | State) -> bool:
        task = self.task
        if self.retries_done >= task.retries:
            return False
        condition = task.retry_condition_fn
        if condition is None:
            return True
        state = (
            exc_or_state
            if isinstance(exc_or_state, State)
            else failed_state(exc_or_state, "Task run encountered an exception", self._details())
        )
        try:
            return bool(condition(task, self.task_run, state))
        except Exception:
            self._logger().error(
                "An error was encountered while running retry_condition_fn %r of task %r",
                getattr(condition, "__name__", condition),
                task.name,
                exc_info=True,
            )
            return False

    def _schedule_retry(self, exc_or_state: BaseException | State) -> float:
        task = self.task
        self.retries_done += 1
        delay = delay_for_retry(
            task.retry_delay_seconds, self.retries_done, task.retry_jitter_factor
        )
        what = "exception" if isinstance(exc_or_state, BaseException) else "state"
        self._logger().info(
            "Task run failed with %s: %r - Retry %s/%s will start %s",
            what,
            exc_or_state,
            self.retries_done,
            task.retries,
            f"{delay} second(s) from now" if delay > 0 else "immediately",
        )
        if delay > 0:
            self.set_state(awaiting_retry(delay), force=True)
        else:
            self.set_state(new_state(RUNNING, "Retrying"), force=True)
        return delay

    # ---------------------------------------------------------------------------- drivers
    def run_sync(self) -> State:
        try:
            if self.task_run is None:
                self.create()
            if self.prepare_sync():
                while True:
                    self.begin_attempt()
                    delay = self.attempt_sync()
                    if delay is None:
                        break
                    if delay > 0:
                        time.sleep(delay)
        except BaseException as exc:
            self.handle_crash(exc)
            raise
        finally:
            if self.scope is None:
                recorder.flush()
        return self.state

    async def run_async(self) -> State:
        try:
            if self.task_run is None:
                self.create()
            if await self.prepare_async():
                while True:
                    self.begin_attempt()
                    delay = await self.attempt_async()
                    if delay is None:
                        break
                    if delay > 0:
                        await asyncio.sleep(delay)
        except BaseException as exc:
            self.handle_crash(exc)
            raise
        finally:
            if self.scope is None:
                recorder.flush()
        return self.state

    def result(self, raise_on_failure: bool = True) -> Any:
        state = self.state
        if state.type is COMPLETED:
            if self._returned is not NOTSET and not isinstance(self._returned, State):
                return self._returned
            return state.result()
        if self._raised is not None:
            if raise_on_failure:
                raise self._raised
            return self._raised
        return state.result(raise_on_failure=raise_on_failure)


def _timeout_message(seconds: float | None) -> str:
    return f"Task run exceeded timeout of {seconds} second(s)"


def run_task(
    task: Any,
    parameters: dict[str, Any],
    wait_for: Any = None,
    return_type: str = "result",
    dependencies: dict[str, list[uuid.UUID]] | None = None,
) -> Any:
    """Run a task now: its result, or its final State with ``return_type="state"``.

    For an async task this returns a coroutine to await.
    """
    engine = TaskRunEngine(task, parameters, wait_for, dependencies)
    if task.isasync:
        return _run_and_return_async(engine, return_type)
    engine.run_sync()
    return engine.state if return_type == "state" else engine.result()


async def _run_and_return_async(engine: TaskRunEngine, return_type: str) -> Any:
    await engine.run_async()
    return engine.state if return_type == "state" else engine.result()


def run_in_worker(engine: TaskRunEngine) -> State:
    """Entry point of a task runner thread: run to the end, return the final state."""
    try:
        if engine.task.isasync:
            asyncio.run(engine.run_async())
        else:
            engine.run_sync()
    except BaseException:  # already recorded as Crashed; the future carries the state
        pass
    return engine.state
