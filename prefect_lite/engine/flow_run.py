"""A flow run's record and its state changes, around its execution.

``FlowRunLifecycle`` validates the parameters, creates the flow run (or adopts an
existing record, e.g. a worker's; a subflow also records a task run in its parent, which
``parent_task_run_id`` points at), proposes each state synchronously through the client
(a rejection is respected: ``self.state`` becomes what the orchestrator answered), and
finishes the run: task run changes flushed first, then the final state, then hooks.
``FlowRunEngine`` (flow_engine.py) adds the execution: attempts, retries, drivers.
"""

from __future__ import annotations

from typing import Any

from prefect_lite.context import FlowRunContext, current_tags
from prefect_lite.engine import extensions, outage, recorder
from prefect_lite.engine.flow_support import SubflowLink, resolve_wait_for
from prefect_lite.engine.hooks import hook_kind, run_hooks
from prefect_lite.engine.outcomes import new_state, run_details
from prefect_lite.engine.parameters import jsonable_parameters, render_run_name
from prefect_lite.engine.scope import FlowRunScope, current_scope, engine_client
from prefect_lite.exceptions import ParameterTypeError, StoreUnavailable, UpstreamTaskError
from prefect_lite.schemas import EmpiricalPolicy, FlowRun
from prefect_lite.states import State, StateType

RUNNING, COMPLETED, FAILED = StateType.RUNNING, StateType.COMPLETED, StateType.FAILED
NOTSET: Any = object()


class FlowRunLifecycle:
    """The record and states of one flow run (see module doc)."""

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
        self._returned: Any = NOTSET
        self._raised: BaseException | None = None
        self._logger: Any = None

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
        run = self.flow_run
        assert run is not None
        outage.ride_out(lambda: self.client.update_flow_run(run.id, name=name), "renaming")
        self.flow_run.__dict__["name"] = name

    def propose(self, state: State, force: bool = False) -> bool:
        """Propose a state; True if accepted as proposed. Otherwise ``self.state`` is what
        the orchestrator answered (the run's current state, or what it turned into)."""
        run = self.flow_run
        assert run is not None

        def send() -> Any:
            return self.client.set_flow_run_state(run.id, state, force=force)

        if isinstance(self._raised, StoreUnavailable):  # waited for once already: one try
            answer = send()
        else:
            answer = outage.ride_out(send, f"recording flow run {run.name!r} as {state.name}")
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

    def _close(self) -> None:
        if self.parent_scope is None:
            recorder.flush()
            extensions.flush_logs()


def _policy(flow: Any) -> EmpiricalPolicy:
    policy: EmpiricalPolicy | None = flow._engine_cache.get("policy")
    if policy is None:
        policy = flow._engine_cache["policy"] = EmpiricalPolicy(
            retries=flow.retries, retry_delay=flow.retry_delay_seconds, max_retries=flow.retries
        )
    return policy
