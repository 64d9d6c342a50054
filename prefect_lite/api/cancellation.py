"""Cancelling a flow run: ``POST /flow_runs/{id}/cancel`` (see ``orchestration.cancel``)."""

from __future__ import annotations

import uuid

from prefect_lite.api.registry import operation
from prefect_lite.exceptions import ValidationError
from prefect_lite.orchestration import cancel
from prefect_lite.schemas import OrchestrationResult

MAX_MESSAGE = 2000


@operation("POST", "/flow_runs/{flow_run_id}/cancel", tag="flow_runs", role="run")
def cancel_flow_run(flow_run_id: uuid.UUID, message: str | None = None) -> OrchestrationResult:
    """Stop a flow run: one that has not started is CANCELLED at once, a running one is
    CANCELLING until its worker has stopped it; unfinished subflow runs are cancelled too."""
    if message is not None and len(message) > MAX_MESSAGE:
        raise ValidationError(f"message is {len(message)} characters; the limit is {MAX_MESSAGE}")
    return cancel.cancel_flow_run(flow_run_id, message)
