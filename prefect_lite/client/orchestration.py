"""The orchestration clients: ``SyncPrefectClient`` and the async ``PrefectClient``.

Methods are thin: they name an API operation and pass arguments. The SDK and the CLI use
only these clients, so code behaves the same against local Redis and a remote server.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any

from prefect_lite.client.transport import Transport, default_transport
from prefect_lite.schemas import (
    BlockDocument,
    BlockType,
    CacheRecord,
    Deployment,
    EmpiricalPolicy,
    Flow,
    FlowRun,
    Log,
    OrchestrationResult,
    RunInput,
    Schedule,
    TaskRun,
    Variable,
    Worker,
    WorkPool,
    WorkPoolStatus,
    WorkQueue,
)
from prefect_lite.states import State, StateType


class SyncPrefectClient:
    def __init__(self, transport: Transport | None = None) -> None:
        self._transport = transport or default_transport()

    @property
    def is_local(self) -> bool:
        return bool(getattr(self._transport, "is_local", False))

    def __enter__(self) -> SyncPrefectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def _call(self, operation: str, **arguments: Any) -> Any:
        return self._transport.call(operation, arguments)

    # -- flows
    def create_flow(self, flow: Any) -> Flow:
        return self._call("create_flow", name=flow if isinstance(flow, str) else flow.name)

    def read_flow(self, flow_id: uuid.UUID) -> Flow:
        return self._call("read_flow", flow_id=flow_id)

    def read_flow_by_name(self, name: str) -> Flow:
        return self._call("read_flow_by_name", name=name)

    def read_flows(self, name_prefix: str = "", limit: int = 200, offset: int = 0) -> list[Flow]:
        return self._call("read_flows", name_prefix=name_prefix, limit=limit, offset=offset)

    # -- flow runs
    def create_flow_run(
        self,
        flow: Any,
        name: str | None = None,
        parameters: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        parent_task_run_id: uuid.UUID | None = None,
        state: State | None = None,
        **extra: Any,
    ) -> FlowRun:
        flow_name = flow if isinstance(flow, str) else flow.name
        return self._call(
            "create_flow_run",
            flow_name=flow_name,
            name=name,
            parameters=parameters,
            context=context,
            tags=tags,
            parent_task_run_id=parent_task_run_id,
            state=state,
            **extra,
        )

    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        return self._call("read_flow_run", flow_run_id=flow_run_id)

    def read_flow_runs(
        self,
        states: list[StateType] | None = None,
        flow_name: str | None = None,
        flow_id: uuid.UUID | None = None,
        deployment_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        start_after: datetime | None = None,
        start_before: datetime | None = None,
        limit: int = 200,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[FlowRun]:
        return self._call(
            "read_flow_runs",
            states=states,
            flow_name=flow_name,
            flow_id=flow_id,
            deployment_id=deployment_id,
            tags=tags,
            start_after=start_after,
            start_before=start_before,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
        )

    def set_flow_run_state(
        self,
        flow_run_id: uuid.UUID,
        state: State,
        force: bool = False,
        expected_version: int | None = None,
        lease: str | None = None,
        new_lease: str | None = None,
        lease_expiry: float | None = None,
    ) -> OrchestrationResult:
        return self._call(
            "set_flow_run_state",
            flow_run_id=flow_run_id,
            state=state,
            force=force,
            expected_version=expected_version,
            lease=lease,
            new_lease=new_lease,
            lease_expiry=lease_expiry,
        )

    def new_lease_token(self) -> str:
        """A lease token for a run this process will hold. In process it names the
        process, whose connections to Redis carry the same name (a dead holder is then
        noticed at once); over HTTP it is anonymous (the silent-holder rule applies)."""
        from prefect_lite.storage import connection, leases

        return leases.new_token(connection.process_owner() if self.is_local else None)

    def read_flow_run_states(self, flow_run_id: uuid.UUID) -> list[State]:
        return self._call("read_flow_run_states", flow_run_id=flow_run_id)

    def wait_for_flow_run_change(
        self, flow_run_id: uuid.UUID, version: int | None = None, timeout: float = 10.0
    ) -> FlowRun:
        """The run once its state version differs from ``version`` (None: from now), or
        after ``timeout`` seconds (at most 10) unchanged: a long poll, not a loop."""
        return self._call(
            "wait_for_flow_run_change", flow_run_id=flow_run_id, version=version, timeout=timeout
        )

    def update_flow_run(
        self,
        flow_run_id: uuid.UUID,
        name: str | None = None,
        empirical_policy: EmpiricalPolicy | None = None,
        **fields: Any,
    ) -> None:
        self._call(
            "update_flow_run",
            flow_run_id=flow_run_id,
            name=name,
            empirical_policy=empirical_policy,
            **fields,
        )

    # -- task runs
    def create_task_run(self, task_run: TaskRun, state: State) -> TaskRun:
        return self._call("create_task_run", task_run=task_run, state=state)

    def apply_task_run_changes(self, changes: list[Any]) -> list[str]:
        return self._call("apply_task_run_changes", changes=changes)

    def apply_task_run_rows(
        self, rows: list[tuple[str, uuid.UUID, State, TaskRun | None, bool]]
    ) -> list[str]:
        """``apply_task_run_changes`` from plain ``(op, task_run_id, state, task_run, force)``
        rows, as the engine's background recorder queues them (the SDK never imports the
        API layer, so the change records are built here). In process, the rows go to the
        handler as they are (no change models to build, validate and take apart again)."""
        from prefect_lite.api import task_runs

        if getattr(self._transport, "is_local", False):
            return task_runs.apply_task_run_rows(rows)
        changes = [
            task_runs.TaskRunChange.model_validate(
                {"op": op, "task_run_id": run_id, "state": state, "task_run": run, "force": force}
            )
            for op, run_id, state, run, force in rows
        ]
        return self.apply_task_run_changes(changes)

    def set_task_run_state(
        self, task_run_id: uuid.UUID, state: State, force: bool = False
    ) -> OrchestrationResult:
        return self._call("set_task_run_state", task_run_id=task_run_id, state=state, force=force)

    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        return self._call("read_task_run", task_run_id=task_run_id)

    def read_task_runs(self, flow_run_id: uuid.UUID, limit: int = 10_000) -> list[TaskRun]:
        return self._call("read_task_runs", flow_run_id=flow_run_id, limit=limit)

    def read_task_run_states(self, task_run_id: uuid.UUID) -> list[State]:
        return self._call("read_task_run_states", task_run_id=task_run_id)

    # -- deployments
    def create_deployment(self, flow_name: str, name: str, **fields: Any) -> Deployment:
        """Create or update (same id) the deployment ``flow_name/name``; see the API handler
        ``create_deployment`` for the fields."""
        return self._call("create_deployment", flow_name=flow_name, name=name, **fields)

    def read_deployment(
        self, deployment_id: uuid.UUID, include_secrets: bool = False
    ) -> Deployment:
        """The deployment; credentials in its pull steps masked unless ``include_secrets``
        (what a worker needs to run it)."""
        return self._call(
            "read_deployment", deployment_id=deployment_id, include_secrets=include_secrets
        )

    def read_deployment_by_name(self, name: str) -> Deployment:
        """``name`` is ``flow-name/deployment-name`` (credentials masked)."""
        flow_name, _, deployment_name = name.partition("/")
        if not flow_name or not deployment_name:
            from prefect_lite.exceptions import ValidationError

            raise ValidationError(
                f"{name!r} is not a deployment name (expected 'flow-name/deployment-name')"
            )
        return self._call(
            "read_deployment_by_name", flow_name=flow_name, deployment_name=deployment_name
        )

    def read_deployments(
        self, flow_name: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[Deployment]:
        return self._call("read_deployments", flow_name=flow_name, limit=limit, offset=offset)

    def delete_deployment(self, deployment_id: uuid.UUID) -> None:
        self._call("delete_deployment", deployment_id=deployment_id)

    def pause_deployment(self, deployment_id: uuid.UUID) -> Deployment:
        return self._call("pause_deployment", deployment_id=deployment_id)

    def resume_deployment(self, deployment_id: uuid.UUID) -> Deployment:
        return self._call("resume_deployment", deployment_id=deployment_id)

    def create_flow_run_from_deployment(
        self,
        deployment_id: uuid.UUID,
        *,
        parameters: dict[str, Any] | None = None,
        scheduled_time: datetime | None = None,
        name: str | None = None,
        tags: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        work_queue_name: str | None = None,
        parent_task_run_id: uuid.UUID | None = None,
        job_variables: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        enforce_parameter_schema: bool | None = None,
        state: State | None = None,
    ) -> FlowRun:
        """A run of the deployment, SCHEDULED at ``scheduled_time`` (default now; a
        Scheduled ``state`` gives the time too, as with Prefect's client)."""
        if state is not None:
            if state.type is not StateType.SCHEDULED:
                from prefect_lite.exceptions import ValidationError

                raise ValidationError(
                    f"a run of a deployment starts SCHEDULED, not {state.type.value}"
                )
            scheduled_time = scheduled_time or state.state_details.scheduled_time
        return self._call(
            "create_flow_run_from_deployment",
            deployment_id=deployment_id,
            parameters=parameters,
            scheduled_time=scheduled_time,
            name=name,
            tags=list(tags) if tags is not None else None,
            idempotency_key=idempotency_key,
            work_queue_name=work_queue_name,
            parent_task_run_id=parent_task_run_id,
            job_variables=job_variables,
            context=context,
            enforce_parameter_schema=enforce_parameter_schema,
        )

    def create_flow_run_from_deployment_name(
        self,
        name: str,
        *,
        parameters: dict[str, Any] | None = None,
        scheduled_time: datetime | None = None,
        flow_run_name: str | None = None,
        tags: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        work_queue_name: str | None = None,
        parent_task_run_id: uuid.UUID | None = None,
        job_variables: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        enforce_parameter_schema: bool | None = None,
    ) -> FlowRun:
        """Like ``create_flow_run_from_deployment`` for ``flow-name/deployment-name``, in
        one request."""
        flow_name, _, deployment_name = name.partition("/")
        if not flow_name or not deployment_name or "/" in deployment_name:
            from prefect_lite.exceptions import ValidationError

            raise ValidationError(
                f"{name!r} is not a deployment name (expected 'flow-name/deployment-name')"
            )
        return self._call(
            "create_flow_run_from_deployment_name",
            flow_name=flow_name,
            deployment_name=deployment_name,
            parameters=parameters,
            scheduled_time=scheduled_time,
            name=flow_run_name,
            tags=list(tags) if tags is not None else None,
            idempotency_key=idempotency_key,
            work_queue_name=work_queue_name,
            parent_task_run_id=parent_task_run_id,
            job_variables=job_variables,
            context=context,
            enforce_parameter_schema=enforce_parameter_schema,
        )

    def read_deployment_schedules(self, deployment_id: uuid.UUID) -> list[Schedule]:
        return self._call("read_deployment_schedules", deployment_id=deployment_id)

    def update_deployment_schedule(
        self, deployment_id: uuid.UUID, schedule_id: uuid.UUID, active: bool | None = None
    ) -> Schedule:
        return self._call(
            "update_deployment_schedule",
            deployment_id=deployment_id,
            schedule_id=schedule_id,
            active=active,
        )

    # -- logs
    def create_logs(self, logs: list[Log]) -> int:
        return self._call("create_logs", logs=logs)

    def read_logs(
        self,
        flow_run_id: uuid.UUID,
        offset: int = 0,
        limit: int = 1000,
        task_run_id: uuid.UUID | None = None,
        min_level: int = 0,
    ) -> list[Log]:
        return self._call(
            "read_logs",
            flow_run_id=flow_run_id,
            offset=offset,
            limit=limit,
            task_run_id=task_run_id,
            min_level=min_level,
        )

    # -- variables
    def create_variable(
        self, name: str, value: Any, tags: list[str] | None = None, overwrite: bool = False
    ) -> Variable:
        return self._call("create_variable", name=name, value=value, tags=tags, overwrite=overwrite)

    def read_variable_by_name(self, name: str) -> Variable:
        return self._call("read_variable_by_name", name=name)

    def read_variables(
        self,
        name_prefix: str = "",
        tags: list[str] | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[Variable]:
        return self._call(
            "read_variables", name_prefix=name_prefix, tags=tags, limit=limit, offset=offset
        )

    def delete_variable_by_name(self, name: str) -> None:
        self._call("delete_variable_by_name", name=name)

    # -- blocks
    def create_block_document(
        self, block_document: BlockDocument, overwrite: bool = False
    ) -> BlockDocument:
        return self._call(
            "create_block_document", block_document=block_document, overwrite=overwrite
        )

    def read_block_document_by_name(
        self, block_type_slug: str, name: str, include_secrets: bool = False
    ) -> BlockDocument:
        return self._call(
            "read_block_document_by_name",
            block_type_slug=block_type_slug,
            name=name,
            include_secrets=include_secrets,
        )

    def read_block_document(
        self, block_document_id: uuid.UUID, include_secrets: bool = False
    ) -> BlockDocument:
        return self._call(
            "read_block_document",
            block_document_id=block_document_id,
            include_secrets=include_secrets,
        )

    def read_block_documents(
        self,
        block_type_slug: str | None = None,
        limit: int = 200,
        offset: int = 0,
        include_secrets: bool = False,
    ) -> list[BlockDocument]:
        return self._call(
            "read_block_documents",
            block_type_slug=block_type_slug,
            limit=limit,
            offset=offset,
            include_secrets=include_secrets,
        )

    def delete_block_document_by_name(self, block_type_slug: str, name: str) -> None:
        self._call("delete_block_document_by_name", block_type_slug=block_type_slug, name=name)

    def delete_block_document(self, block_document_id: uuid.UUID) -> None:
        self._call("delete_block_document", block_document_id=block_document_id)

    def create_block_type(self, block_type: BlockType) -> BlockType:
        return self._call("create_block_type", block_type=block_type)

    def read_block_type_by_slug(self, slug: str) -> BlockType:
        return self._call("read_block_type_by_slug", slug=slug)

    def read_block_types(self, limit: int = 200, offset: int = 0) -> list[BlockType]:
        return self._call("read_block_types", limit=limit, offset=offset)

    # -- results, cache records, transaction locks
    def write_result(self, key: str, blob: str) -> None:
        self._call("write_result", key=key, blob=blob)

    def read_result(self, key: str) -> str:
        return self._call("read_result", key=key)

    def delete_result(self, key: str) -> None:
        self._call("delete_result", key=key)

    def read_cache_record(self, key: str) -> CacheRecord | None:
        return self._call("read_cache_record", key=key)

    def write_cache_records(self, records: list[CacheRecord]) -> None:
        self._call("write_cache_records", records=records)

    def delete_cache_record(self, key: str) -> None:
        self._call("delete_cache_record", key=key)

    def acquire_transaction_lock(self, key: str, holder: str, hold_seconds: float) -> bool:
        return self._call(
            "acquire_transaction_lock", key=key, holder=holder, hold_seconds=hold_seconds
        )

    def release_transaction_lock(self, key: str, holder: str) -> bool:
        return self._call("release_transaction_lock", key=key, holder=holder)

    # -- flow run inputs, pause and resume
    def create_flow_run_input(
        self, flow_run_id: uuid.UUID, key: str, value: Any, sender: str | None = None
    ) -> RunInput:
        return self._call(
            "create_flow_run_input", flow_run_id=flow_run_id, key=key, value=value, sender=sender
        )

    def read_flow_run_input(self, flow_run_id: uuid.UUID, key: str) -> RunInput:
        return self._call("read_flow_run_input", flow_run_id=flow_run_id, key=key)

    def delete_flow_run_input(self, flow_run_id: uuid.UUID, key: str) -> None:
        self._call("delete_flow_run_input", flow_run_id=flow_run_id, key=key)

    def filter_flow_run_input(
        self,
        flow_run_id: uuid.UUID,
        key_prefix: str,
        limit: int = 1,
        exclude_keys: Iterable[str] | None = None,
        wait_seconds: float = 0.0,
    ) -> list[RunInput]:
        """Inputs by key prefix, oldest first; ``wait_seconds`` (<= 10) waits for one."""
        return self._call(
            "filter_flow_run_input",
            flow_run_id=flow_run_id,
            key_prefix=key_prefix,
            limit=limit,
            exclude_keys=sorted(exclude_keys) if exclude_keys else None,
            wait_seconds=wait_seconds,
        )

    def pause_flow_run(self, flow_run_id: uuid.UUID, state: State) -> OrchestrationResult:
        return self._call("pause_flow_run", flow_run_id=flow_run_id, state=state)

    def resume_flow_run(self, flow_run_id: uuid.UUID, run_input: Any = None) -> OrchestrationResult:
        return self._call("resume_flow_run", flow_run_id=flow_run_id, run_input=run_input)

    def wait_for_flow_run_resume(self, flow_run_id: uuid.UUID, timeout: float) -> State | None:
        """Block (at most 10 s) while the run is paused; its state then."""
        return self._call("wait_for_flow_run_resume", flow_run_id=flow_run_id, timeout=timeout)

    # -- work pools, work queues, workers
    def create_work_pool(
        self,
        name: str,
        type: str = "process",
        description: str | None = None,
        concurrency_limit: int | None = None,
        paused: bool = False,
    ) -> WorkPool:
        return self._call(
            "create_work_pool",
            name=name,
            type=type,
            description=description,
            concurrency_limit=concurrency_limit,
            paused=paused,
        )

    def read_work_pool(self, work_pool_name: str) -> WorkPool:
        return self._call("read_work_pool", work_pool_name=work_pool_name)

    def read_work_pools(self, limit: int = 200, offset: int = 0) -> list[WorkPool]:
        return self._call("read_work_pools", limit=limit, offset=offset)

    def update_work_pool(
        self,
        work_pool_name: str,
        description: str | None = None,
        concurrency_limit: int | None = None,
        clear_concurrency_limit: bool = False,
        paused: bool | None = None,
    ) -> WorkPool:
        return self._call(
            "update_work_pool",
            work_pool_name=work_pool_name,
            description=description,
            concurrency_limit=concurrency_limit,
            clear_concurrency_limit=clear_concurrency_limit,
            paused=paused,
        )

    def delete_work_pool(self, work_pool_name: str, force: bool = False) -> None:
        self._call("delete_work_pool", work_pool_name=work_pool_name, force=force)

    def read_work_pool_status(self, work_pool_name: str) -> WorkPoolStatus:
        return self._call("read_work_pool_status", work_pool_name=work_pool_name)

    def create_work_queue(
        self,
        work_pool_name: str,
        name: str,
        description: str | None = None,
        priority: int | None = None,
        concurrency_limit: int | None = None,
        paused: bool = False,
    ) -> WorkQueue:
        return self._call(
            "create_work_queue",
            work_pool_name=work_pool_name,
            name=name,
            description=description,
            priority=priority,
            concurrency_limit=concurrency_limit,
            paused=paused,
        )

    def read_work_queue(self, work_pool_name: str, name: str) -> WorkQueue:
        return self._call("read_work_queue", work_pool_name=work_pool_name, name=name)

    def read_work_queues(self, work_pool_name: str) -> list[WorkQueue]:
        return self._call("read_work_queues", work_pool_name=work_pool_name)

    def update_work_queue(
        self,
        work_pool_name: str,
        name: str,
        description: str | None = None,
        priority: int | None = None,
        concurrency_limit: int | None = None,
        clear_concurrency_limit: bool = False,
        paused: bool | None = None,
    ) -> WorkQueue:
        return self._call(
            "update_work_queue",
            work_pool_name=work_pool_name,
            name=name,
            description=description,
            priority=priority,
            concurrency_limit=concurrency_limit,
            clear_concurrency_limit=clear_concurrency_limit,
            paused=paused,
        )

    def delete_work_queue(self, work_pool_name: str, name: str, force: bool = False) -> None:
        self._call("delete_work_queue", work_pool_name=work_pool_name, name=name, force=force)

    def read_workers(self, work_pool_name: str | None = None) -> list[Worker]:
        return self._call("read_workers", work_pool_name=work_pool_name)

    def cancel_flow_run(
        self, flow_run_id: uuid.UUID, message: str | None = None
    ) -> OrchestrationResult:
        """Stop a flow run (and its unfinished subflow runs); the state it is in now:
        CANCELLED if it had not started, else CANCELLING until its worker stopped it."""
        return self._call("cancel_flow_run", flow_run_id=flow_run_id, message=message)

    # -- runners: serving deployments from this process (``serve``)
    def read_due_flow_runs(
        self, deployment_ids: list[uuid.UUID], before: datetime | None = None, limit: int = 100
    ) -> list[FlowRun]:
        return self._call(
            "read_due_flow_runs", deployment_ids=deployment_ids, before=before, limit=limit
        )

    def renew_flow_run_leases(
        self, leases: list[tuple[uuid.UUID, str]], lease_seconds: float
    ) -> list[str]:
        """Extend held leases of ``(flow run id, lease token)``; per run its state type,
        FREE (ended) or LOST (taken over)."""
        from prefect_lite.schemas import LeaseRenewal

        items = [LeaseRenewal(flow_run_id=run_id, lease=token) for run_id, token in leases]
        return self._call("renew_flow_run_leases", leases=items, lease_seconds=lease_seconds)

    def report_flow_run_exit(
        self,
        flow_run_id: uuid.UUID,
        lease: str,
        how: str,
        cancelled: bool = False,
        reason: str | None = None,
    ) -> State | None:
        return self._call(
            "report_flow_run_exit",
            flow_run_id=flow_run_id,
            lease=lease,
            how=how,
            cancelled=cancelled,
            reason=reason,
        )


class PrefectClient:
    """Async face of the same client: every ``SyncPrefectClient`` method, awaitable.

    In-process calls run directly (Redis answers in microseconds); HTTP calls run in a
    worker thread so the event loop is never blocked.
    """

    def __init__(self, transport: Transport | None = None) -> None:
        self._sync = SyncPrefectClient(transport)

    async def __aenter__(self) -> PrefectClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._sync.close()

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        method = getattr(self._sync, name)
        if not callable(method) or name.startswith("_"):
            raise AttributeError(name)
        local = self._sync.is_local

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            if local:
                return method(*args, **kwargs)
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


def get_client(httpx_settings: dict[str, Any] | None = None, sync_client: bool = False) -> Any:
    """``PrefectClient`` (async) or, with ``sync_client=True``, ``SyncPrefectClient``."""
    transport = default_transport()
    return SyncPrefectClient(transport) if sync_client else PrefectClient(transport)
