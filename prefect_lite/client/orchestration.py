"""The orchestration clients: ``SyncPrefectClient`` and the async ``PrefectClient``.

Methods are thin: they name an API operation and pass arguments. The SDK and the CLI use
only these clients, so code behaves the same against local Redis and a remote server.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from types import TracebackType
from typing import Any

from prefect_lite.client.transport import Transport, default_transport
from prefect_lite.schemas import (
    BlockDocument,
    BlockType,
    Deployment,
    EmpiricalPolicy,
    Flow,
    FlowRun,
    Log,
    OrchestrationResult,
    Schedule,
    TaskRun,
    Variable,
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

    def read_flow_run_states(self, flow_run_id: uuid.UUID) -> list[State]:
        return self._call("read_flow_run_states", flow_run_id=flow_run_id)

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
        self, rows: list[tuple[Any, uuid.UUID, State, TaskRun | None, bool]]
    ) -> list[str]:
        """``apply_task_run_changes`` from plain ``(op, task_run_id, state, task_run, force)``
        rows, as the engine's background recorder queues them (the SDK never imports the
        API layer, so the change records are built here)."""
        from prefect_lite.api.task_runs import TaskRunChange

        changes = [
            TaskRunChange(op=op, task_run_id=run_id, state=state, task_run=run, force=force)
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

    def read_deployment(self, deployment_id: uuid.UUID) -> Deployment:
        return self._call("read_deployment", deployment_id=deployment_id)

    def read_deployment_by_name(self, name: str) -> Deployment:
        """``name`` is ``flow-name/deployment-name``."""
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
