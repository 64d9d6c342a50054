"""The state model and the one transition table."""

from __future__ import annotations

import pytest

from prefect_lite import states
from prefect_lite.exceptions import CrashedRun, FailedRun, UnfinishedRun
from prefect_lite.states import (
    TRANSITIONS,
    Outcome,
    State,
    StateType,
    Turn,
    decide,
)

CONSTRUCTORS = {
    "Completed": (states.Completed, StateType.COMPLETED),
    "Failed": (states.Failed, StateType.FAILED),
    "Running": (states.Running, StateType.RUNNING),
    "Pending": (states.Pending, StateType.PENDING),
    "Cancelled": (states.Cancelled, StateType.CANCELLED),
    "Crashed": (states.Crashed, StateType.CRASHED),
    "Scheduled": (states.Scheduled, StateType.SCHEDULED),
    "Paused": (states.Paused, StateType.PAUSED),
    "Suspended": (states.Suspended, StateType.PAUSED),
    "AwaitingRetry": (states.AwaitingRetry, StateType.SCHEDULED),
    "Retrying": (states.Retrying, StateType.RUNNING),
    "Late": (states.Late, StateType.SCHEDULED),
    "Cached": (states.Cached, StateType.COMPLETED),
    "TimedOut": (states.TimedOut, StateType.FAILED),
}


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_constructors_give_prefect_names_and_types(name: str) -> None:
    make, expected_type = CONSTRUCTORS[name]
    state = make()
    assert state.name == name
    assert state.type == expected_type


def test_every_seed_state_type_exists_plus_cancelling() -> None:
    seeds = {"SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
    seeds |= {"PAUSED", "SUSPENDED", "AWAITING_RETRY", "RETRYING", "CANCELLING"}
    assert {t.value for t in StateType} == seeds


def test_alias_types_are_stored_under_canonical_types() -> None:
    assert State(type=StateType.SUSPENDED).type == StateType.PAUSED
    assert State(type=StateType.SUSPENDED).name == "Suspended"
    assert State(type=StateType.AWAITING_RETRY).name == "AwaitingRetry"
    assert State(type=StateType.RETRYING).type == StateType.RUNNING


def test_every_state_type_pair_has_a_decided_outcome() -> None:
    for current in [None, *StateType]:
        for proposed in StateType:
            decision = decide(current, proposed)
            assert isinstance(decision, Outcome | Turn), (current, proposed)
    # The table itself covers every canonical pair explicitly.
    canonical = [t for t in StateType if t not in states.ALIASES]
    assert set(TRANSITIONS) == {None, *canonical}
    for row in TRANSITIONS.values():
        assert set(row) == set(canonical)


def test_terminal_states_accept_nothing_without_force() -> None:
    for terminal in states.TERMINAL_TYPES:
        for proposed in StateType:
            assert decide(terminal, proposed) == Outcome.REJECT


def test_key_rules() -> None:
    assert decide(StateType.PENDING, StateType.PENDING) == Outcome.REJECT  # one claimer wins
    assert decide(StateType.SCHEDULED, StateType.PENDING) == Outcome.ACCEPT
    assert decide(StateType.RUNNING, StateType.COMPLETED) == Outcome.ACCEPT
    assert decide(StateType.CANCELLING, StateType.RUNNING) == Outcome.REJECT
    turned = decide(StateType.SCHEDULED, StateType.CANCELLING)
    assert isinstance(turned, Turn) and turned.type == StateType.CANCELLED


def test_result_returns_data_or_raises() -> None:
    assert states.Completed(data=41).result() == 41
    boom = ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        states.Failed(data=boom).result()
    assert states.Failed(data=boom).result(raise_on_failure=False) is boom
    with pytest.raises(FailedRun):
        states.Failed(message="no exception kept").result()
    with pytest.raises(CrashedRun):
        states.Crashed(message="worker died").result()
    with pytest.raises(UnfinishedRun):
        states.Running().result()


def test_is_helpers() -> None:
    assert states.Completed().is_completed() and states.Completed().is_final()
    assert states.Failed().is_failed() and states.Crashed().is_crashed()
    assert states.Running().is_running() and not states.Running().is_final()
    assert states.Paused().is_paused() and states.Scheduled().is_scheduled()
    assert states.Pending().is_pending() and states.Cancelled().is_cancelled()
    assert states.Cancelling().is_cancelling()


def test_paused_details_and_round_trip() -> None:
    paused = states.Paused(timeout_seconds=30, pause_key="approve")
    assert paused.state_details.pause_key == "approve"
    assert paused.state_details.pause_timeout is not None
    copy = State.from_record(paused.to_record())
    assert copy.state_details.pause_key == "approve"
    assert copy.name == "Paused" and copy.type == StateType.PAUSED
    with pytest.raises(ValueError):
        states.Paused(timeout_seconds=3, pause_expiration_time=paused.timestamp)


def test_result_ref_survives_storage_but_in_memory_data_does_not() -> None:
    ref = states.ResultRef(storage="local", key="abc")
    stored = State.from_record(states.Completed(data=ref).to_record())
    assert stored.data == ref
    assert State.from_record(states.Completed(data={"x": 1}).to_record()).data is None
