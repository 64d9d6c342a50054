"""A task run's record and its state changes, before and around its execution.

``TaskRunLifecycle`` builds the ``TaskRun`` record (Pending), resolves the inputs (an
upstream failure ends the run NotReady -> Failed without running it), names the run,
consults the cache seam, and applies every state change: in memory on the record, and
queued to the background recorder (never written inline: this is the hot path).
``TaskRunEngine`` (task_engine.py) adds the execution: attempts, retries, drivers.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from prefect_lite import _time
from prefect_lite.context import FlowRunContext, TagsContext, TaskRunContext
from prefect_lite.engine import caching, extensions, recorder, records
from prefect_lite.engine.hooks import run_hooks
from prefect_lite.engine.inputs import Scan, resolve, scan_inputs, wait_future
from prefect_lite.engine.outcomes import failed_state, new_state, run_details
from prefect_lite.engine.parameters import render_run_name
from prefect_lite.engine.scope import SCOPE_KEY, FlowRunScope, engine_client
from prefect_lite.exceptions import Abort, UpstreamTaskError
from prefect_lite.schemas import EmpiricalPolicy, RunInputRef, TaskRun
from prefect_lite.states import State, StateType

PENDING, RUNNING, COMPLETED = StateType.PENDING, StateType.RUNNING, StateType.COMPLETED
FINAL = frozenset({COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED})
NOTSET: Any = object()


class TaskRunLifecycle:
    """The record and states of one task run (see module doc)."""

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
        self._returned: Any = NOTSET
        self._raised: BaseException | None = None
        self._created = False
        self._log_prints = _log_prints(task, flow_ctx)

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
            if kind in FINAL:
                _update(run, end_time=state.timestamp)
        recorder.record((self.client, "propose", run.id, state, None, force))

    def _details(self) -> Any:
        run = self.task_run
        assert run is not None
        return run_details(run.id, run.flow_run_id)

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
            try:
                self.cache_key = caching.compute_cache_key(task, ctx, self.parameters)
            except Exception as exc:  # fail loudly rather than run uncached
                self._raised = exc
                message = f"Could not compute the cache key of task {task.name!r}:"
                self._finish(failed_state(exc, message, self._details()))
                return True
        if self.cache_key is None:
            return False
        run = self.task_run
        assert run is not None
        _update(run, cache_key=self.cache_key)
        hooks = caching.result_hooks()
        if hooks is None or task.refresh_cache:
            return False
        try:
            cached = hooks.lookup(task, self.cache_key, ctx)
        except Exception as exc:  # e.g. a cached pickle without a valid signature
            self._raised = exc
            message = f"Could not read the cached result of task {task.name!r}:"
            self._finish(failed_state(exc, message, self._details()))
            return True
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

    def cancel(self, reason: str) -> State:
        """End a run that will not start (its flow run was interrupted)."""
        if self.task_run is None:
            self.create()
        if not self._created:
            self._record_create()
        if self.state.type not in FINAL:
            self.set_state(new_state(StateType.CANCELLED, "Cancelled", reason), force=True)
        return self.state

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
        if state.type is StateType.FAILED:
            caching.task_failed(task)
        if state.type is not COMPLETED or extensions.task_logging_enabled(logging.DEBUG):
            level = logging.DEBUG if state.type is COMPLETED else logging.ERROR
            self._logger().log(level, "Finished in state %r", state)

    def _persisted(self, state: State) -> State:
        """The seam for result persistence (issue 4): the hooks may store the value."""
        task = self.task
        if not (task.persist_result or self.cache_key is not None or caching.in_transaction()):
            return state
        hooks = caching.result_hooks()
        if hooks is None:
            return state
        try:
            ref = hooks.persist(
                task,
                state.data,
                self.cache_key,
                state.state_details.cache_expiration,
                self._context(),
            )
        except Exception as exc:  # e.g. PayloadTooLarge: the run fails with it
            self._raised = exc
            self._logger().error("Could not persist the result: %r", exc)
            return failed_state(exc, "Could not persist the task's result:", self._details())
        if ref is not None:
            state.data = ref  # the stored state points at the result (in memory too)
        return state

    def _run_hooks(self, hooks: list[Any]) -> None:
        run_hooks(hooks, (self.task, self.task_run, self.state), self.state, self._logger)

    def _logger(self) -> Any:
        return extensions.task_logger(self.task_run, self.task)

    def _context(self) -> TaskRunContext:
        return TaskRunContext(
            task=self.task,
            task_run=self.task_run,
            parameters=self.parameters,
            client=self.client,
            log_prints=self._log_prints,
        )


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
