"""The batch encoder's JSON parses to the same models as pydantic's own dumps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from prefect_lite import states
from prefect_lite.schemas import EmpiricalPolicy, RunInputRef, TaskRun
from prefect_lite.states import ResultRef, State, StateDetails, StateType
from prefect_lite.storage import task_batch
from prefect_lite.storage.runs import RECORD_EXCLUDE

_WHEN = datetime(2026, 3, 29, 1, 30, 0, 0, tzinfo=UTC)

STATES = [
    states.Pending(),
    states.Running(),
    states.Completed(data=42),  # an in-memory value is not stored
    states.Completed(data=ResultRef(storage="local", key="abc", serializer="json")),
    states.Failed(message='boom \u2603 "quoted"\n', data=ValueError("x")),
    State(type=StateType.AWAITING_RETRY, message="retry"),
    State(
        type=StateType.SCHEDULED,
        timestamp=_WHEN,
        state_details=StateDetails(
            flow_run_id=uuid.uuid4(),
            task_run_id=uuid.uuid4(),
            scheduled_time=_WHEN.astimezone(ZoneInfo("Europe/Berlin")),
            cache_key="k",
            cache_expiration=_WHEN + timedelta(seconds=1, microseconds=5),
            pause_reschedule=True,
            run_input_keyset={"response": "r"},
            retriable=False,
            custom_extra=[1, "two"],
        ),
    ),
    State(type=StateType.COMPLETED, name="Cached", timestamp=datetime(2026, 1, 1)),
]


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.name)
def test_state_json_parses_to_the_stored_form(state: State) -> None:
    fast = State.from_record(orjson.loads(task_batch.encode_state(state)))
    reference = State.from_record(state.to_record())
    assert fast == reference
    assert fast.model_dump() == reference.model_dump()


def test_record_json_parses_to_the_stored_form() -> None:
    run = TaskRun(
        name="t-1",
        task_key="mod.t",
        flow_run_id=uuid.uuid4(),
        tags=["a", "b"],
        task_inputs={"x": [RunInputRef(id=uuid.uuid4())], "y": []},
        empirical_policy=EmpiricalPolicy(retries=2, retry_delay=[1.0, 2.5], max_retries=2),
        expected_start_time=_WHEN,
        cache_expiration=_WHEN,
        state=states.Running(),
        run_count=3,
    )
    fast = TaskRun.model_validate_json(task_batch.encode_record(run))
    reference = TaskRun.model_validate_json(run.model_dump_json(exclude=set(RECORD_EXCLUDE)))
    assert fast == reference
    assert "state" not in orjson.loads(task_batch.encode_record(run))


def test_values_orjson_cannot_write_take_pydantics_serializer() -> None:
    state = State(type=StateType.FAILED, state_details=StateDetails(big=-(2**63) - 1))
    fast = State.model_validate_json(task_batch.encode_state(state))
    assert fast == State.model_validate_json(state.model_dump_json())
    assert fast.state_details.model_extra == {"big": -(2**63) - 1}
