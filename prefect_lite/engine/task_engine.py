"""The task engine: one task run from Pending to its final state.

Steps (Prefect's order): ``create`` the record (Pending) -> ``prepare`` (wait for and
resolve upstream futures; an upstream failure ends the run NotReady -> Failed without
running it; render a run-name template; look up the cache) -> ``begin_attempt``
(Running, or Retrying) -> call the function -> ``handle_success`` / ``handle_exception``
/ ``handle_timeout`` (retry: AwaitingRetry -> Retrying, or finish) -> hooks.
An interrupt (KeyboardInterrupt, SystemExit, termination signal) ends it Crashed and is
re-raised.

State changes are queued to the background recorder, never written inline: this is the
hot path. ``run_sync`` drives sync functions, ``run_async`` awaits async ones; both share
every step but the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from prefect_lite import _time
from prefect_lite.context import FlowRunContext, TagsContext, TaskRunContext
from prefect_lite.engine import caching, extensions, recorder, records
from prefect_lite.engine.hooks import run_hooks
from prefect_lite.engine.inputs import Scan, resolve, scan_inputs, wait_future
from prefect_lite.engine.outcomes import (
    awaiting_retry,
    crashed_state,
    failed_state,
    new_state,
    return_value_to_state,
    run_details,
)
from prefect_lite.engine.parameters import render_run_name
from prefect_lite.engine.scope import SCOPE_KEY, FlowRunScope, engine_client
from prefect_lite.engine.timeouts import Deadline
from prefect_lite.exceptions import (
    Abort,
    FlowRunTimeoutError,
    Pause,
    TaskRunTimeoutError,
    UpstreamTaskError,
)
from prefect_lite.retries import delay_for_retry
from prefect_lite.schemas import EmpiricalPolicy, RunInputRef, TaskRun
from prefect_lite.states import State, StateType

PENDING, RUNNING, COMPLETED = StateType.PENDING, StateType.RUNNING, StateType.COMPLETED
_FINAL = frozenset({COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED})
_NOTSET: Any = object()


class TaskRunEngine:
    """Runs one task run; ``state`` is its current state, ``result()`` its outcome."""

    def __init__(
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: dict[str, list[uuid.UUID]] | None = None,
    ) -> None:
        self.task = task
        self.parameters = parameters
        self.wait_for = wait_for
        self.dependencies = dependencies
        flow_ctx = FlowRunContext.get()
        self.flow_ctx = flow_ctx
        scope = flow_ctx.extra.get(SCOPE_KEY) if flow_ctx is not None else None
        self.scope: FlowRunScope | None = scope
        self.client = scope.client if scope is not None else engine_client()
        self.task_run: TaskRun | None = None
        self.state: State = _INITIAL
        self.scan: Scan | None = None
        self.retries_done = 0
        self.cache_key: str | None = None
        self._returned: Any = _NOTSET
        self._raised: BaseException | None = None
        self._created = False
        self._log_prints = _log_prints(task, flow_ctx)

    # ------------------------------------------------------------------ record & states
    def create(self) -> TaskRun:
        """Build the task run record (Pending); queued now unless a run name must wait for
        resolved inputs."""
        task, scope, flow_ctx = self.task, self.scope, self.flow_ctx
        if scope is not None and scope.cancel_reason is not None:
            raise Abort(scope.cancel_reason)
        self.scan = scan = scan_inputs(self.parameters, self.wait_for, scope)
        flow_run = flow_ctx.flow_run if flow_ctx is not None else None
        if scope is not None:
            dynamic_key = str(scope.next_dynamic_key(task.task_key))
            name = f"{task.name}-{dynamic_key}"
        else:
            dynamic_key = records.fast_uuid4().hex
            name = f"{task.name}-{dynamic_key[:3]}"
        tags_ctx = TagsContext.get()
        tags = task.tags | tags_ctx.current_tags if tags_ctx is not None else task.tags
        lineage = scan.lineage
        if self.dependencies:
            lineage = {**self.dependencies, **lineage}
        inputs = _inputs(lineage) if lineage else {}
        now = _time.now()
        self.task_run = run = records.task_run(
            name=name,
            flow_run_id=flow_run.id if flow_run is not None else None,
            task_key=task.task_key,
            dynamic_key=dynamic_key,
            task_version=task.version,
            tags=list(tags),
            task_inputs=inputs,
            empirical_policy=_policy(task),
            expected_start_time=now,
            created=now,
            updated=now,
            state=None,
        )
        self.state = new_state(PENDING, "Pending")
        _update(run, state=self.state, state_type=PENDING, state_name="Pending")
        if task.task_run_name is None:
            self._record_create()
        return run

    def _record_create(self) -> None:
        run = self.task_run
        assert run is not None
        self._created = True
        recorder.record((self.client, "create", run.id, self.state, run, False))

    def set_state(self, state: State, force: bool = False) -> None:
        run = self.task_run
        assert run is not None
        self.state = state
        kind = state.type
        if kind is RUNNING:
            _update(
                run,
                state=state,
                state_type=kind,
                state_name=state.name,
                run_count=run.run_count + 1,
            )
            if run.start_time is None:
                _update(run, start_time=state.timestamp)
        else:
            _update(run, state=state, state_type=kind, state_name=state.name)
            if kind in _FINAL:
                _update(run, end_time=state.timestamp)
        recorder.record((self.client, "propose", run.id, state, None, force))

    def _details(self) -> Any:
        run = self.task_run
        assert run is not None
        return run_details(run.id, run.flow_run_id)

    # --------------------------------------------------------------------------- prepare
    def _resolve_inputs(self) -> bool:
        """Resolve futures/states in the parameters (upstreams are done by now)."""
        scan = self.scan
        assert scan is not None
        try:
            if scan.needs_resolution:
                self.parameters = {k: resolve(v, wait_future) for k, v in self.parameters.items()}
            if self.wait_for is not None:
                resolve(self.wait_for, wait_future)
        except UpstreamTaskError as exc:
            self._upstream_failed(exc)
            return False
        return True

    def _upstream_failed(self, exc: UpstreamTaskError) -> None:
        if not self._created:
            self._record_create()
        self.set_state(new_state(PENDING, "NotReady", str(exc)), force=True)
        self._raised = exc
        self._finish(
            new_state(StateType.FAILED, "Failed", str(exc), exc, self._details()), hooks=False
        )

    def _after_inputs(self) -> bool:
        """Name the run, record it if not yet, look up the cache. False: the run is over."""
        task = self.task
        if not self._created:
            run = self.task_run
            assert run is not None
            try:
                with self._context():
                    name = render_run_name(task.task_run_name, self.parameters, "task_run_name")
            except Exception as exc:
                self._record_create()
                self._raised = exc
                self._finish(failed_state(exc, "Could not name the task run:", self._details()))
                return False
            _update(run, name=name)
            self._record_create()
        if caching.wants_cache_key(task):
            return not self._try_cache()
        return True

    def _try_cache(self) -> bool:
        task = self.task
        with self._context() as ctx:
            self.cache_key = caching.compute_cache_key(task, ctx, self.parameters)
        if self.cache_key is None:
            return False
        run = self.task_run
        assert run is not None
        _update(run, cache_key=self.cache_key)
        hooks = caching.result_hooks()
        if hooks is None or task.refresh_cache:
            return False
        cached = hooks.lookup(task, self.cache_key, None)
        if cached is None:
            return False
        details = self._details()
        details.cache_key = self.cache_key
        details.cache_expiration = cached.state_details.cache_expiration
        self._finish(new_state(COMPLETED, "Cached", cached.message, cached.data, details))
        return True

    def prepare_sync(self) -> bool:
        scan = self.scan
        assert scan is not None
        for future in scan.futures:
            future.wait()
        if (scan.needs_resolution or self.wait_for is not None) and not self._resolve_inputs():
            return False
        return self._after_inputs()

    async def prepare_async(self) -> bool:
        scan = self.scan
        assert scan is not None
        for future in scan.futures:
            await future.wait_async()
        if (scan.needs_resolution or self.wait_for is not None) and not self._resolve_inputs():
            return False
        return self._after_inputs()

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

    def _context(self) -> TaskRunContext:
        return TaskRunContext(
            task=self.task,
            task_run=self.task_run,
            parameters=self.parameters,
            client=self.client,
            log_prints=self._log_prints,
        )

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
        if self.task_run is None or isinstance(exc, Pause) or self.state.type in _FINAL:
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

    def cancel(self, reason: str) -> State:
        """End a run that will not start (its flow run was interrupted)."""
        if self.task_run is None:
            self.create()
        if not self._created:
            self._record_create()
        if self.state.type not in _FINAL:
            self.set_state(new_state(StateType.CANCELLED, "Cancelled", reason), force=True)
        return self.state

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

    def _finish(self, state: State, hooks: bool = True, persist: bool = False) -> None:
        if persist:
            state = self._persisted(state)
        self.set_state(state, force=state.type is StateType.CANCELLED)
        task = self.task
        if hooks:
            chosen = (
                task.on_completion_hooks
                if state.type is COMPLETED
                else task.on_failure_hooks
                if state.type is StateType.FAILED
                else None
            )
            if chosen:
                self._run_hooks(chosen)
        if state.type is not COMPLETED or extensions.task_logging_enabled(logging.DEBUG):
            level = logging.DEBUG if state.type is COMPLETED else logging.ERROR
            self._logger().log(level, "Finished in state %r", state)

    def _persisted(self, state: State) -> State:
        """The seam for result persistence (issue 4): the hooks may store the value."""
        task = self.task
        if not (task.persist_result or self.cache_key is not None):
            return state
        hooks = caching.result_hooks()
        if hooks is None:
            return state
        ref = hooks.persist(
            task, state.data, self.cache_key, state.state_details.cache_expiration, None
        )
        if ref is not None and not task.cache_result_in_memory:
            state.data = ref
        return state

    def _run_hooks(self, hooks: list[Any]) -> None:
        run_hooks(hooks, (self.task, self.task_run, self.state), self.state, self._logger)

    def _logger(self) -> Any:
        return extensions.task_logger(self.task_run, self.task)

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
            if self._returned is not _NOTSET and not isinstance(self._returned, State):
                return self._returned
            return state.result()
        if self._raised is not None:
            if raise_on_failure:
                raise self._raised
            return self._raised
        return state.result(raise_on_failure=raise_on_failure)


_INITIAL = State(type=StateType.PENDING, name="Pending")


def _update(run: TaskRun, **fields: Any) -> None:
    """Set record fields without pydantic's per-assignment checks (engine-owned values)."""
    run.__dict__.update(fields)


def _inputs(lineage: dict[str, list[uuid.UUID]]) -> dict[str, list[RunInputRef]]:
    return {k: [_input_ref(input_type="task_run", id=i) for i in ids] for k, ids in lineage.items()}


_input_ref = records.Builder(RunInputRef, {})


def _policy(task: Any) -> EmpiricalPolicy:
    policy: EmpiricalPolicy | None = task._engine_cache.get("policy")
    if policy is None:
        policy = task._engine_cache["policy"] = EmpiricalPolicy(
            retries=task.retries,
            retry_delay=task.retry_delay_seconds,
            max_retries=task.retries,
        )
    return policy


def _log_prints(task: Any, flow_ctx: FlowRunContext | None) -> bool:
    if task.log_prints is not None:
        enabled = bool(task.log_prints)
    else:
        parent = TaskRunContext.get() or flow_ctx
        enabled = bool(parent.log_prints) if parent is not None else False
    if enabled:
        extensions.enable_print_capture()
    return enabled


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
