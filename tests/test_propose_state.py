"""propose_state in Redis: table, versions, leases, history, indexes, concurrency."""

from __future__ import annotations

import threading
import uuid

import pytest

from prefect_lite import states
from prefect_lite.client import get_client
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.states import StateType


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    with get_client(sync_client=True) as c:
        yield c


def test_accepts_rejects_and_records_history(client) -> None:  # type: ignore[no-untyped-def]
    run = client.create_flow_run("etl", state=states.Pending())
    assert client.set_flow_run_state(run.id, states.Running()).status == "ACCEPT"
    rejected = client.set_flow_run_state(run.id, states.Pending())
    assert rejected.status == "REJECT"
    assert rejected.state.type == StateType.RUNNING  # the current state is reported back
    assert client.set_flow_run_state(run.id, states.Completed()).status == "ACCEPT"
    assert client.set_flow_run_state(run.id, states.Running()).status == "REJECT"
    stored = client.read_flow_run(run.id)
    assert stored.state_name == "Completed"
    assert stored.version == 3
    assert stored.run_count == 1
    assert stored.start_time is not None and stored.end_time is not None
    names = [s.name for s in client.read_flow_run_states(run.id)]
    assert names == ["Pending", "Running", "Completed"]


def test_force_overrides_the_table(client) -> None:  # type: ignore[no-untyped-def]
    run = client.create_flow_run("etl", state=states.Completed())
    assert client.set_flow_run_state(run.id, states.Scheduled(), force=True).status == "ACCEPT"
    assert client.read_flow_run(run.id).state_type == StateType.SCHEDULED


def test_turned_proposal(client) -> None:  # type: ignore[no-untyped-def]
    run = client.create_flow_run("etl", state=states.Scheduled())
    result = client.set_flow_run_state(run.id, states.Cancelling())
    assert result.status == "ACCEPT"
    assert result.state.type == StateType.CANCELLED
    assert client.read_flow_run(run.id).state_type == StateType.CANCELLED


def test_stale_version_is_rejected(client) -> None:  # type: ignore[no-untyped-def]
    run = client.create_flow_run("etl", state=states.Pending())
    seen = client.read_flow_run(run.id).version
    assert client.set_flow_run_state(run.id, states.Running(), expected_version=seen).status == (
        "ACCEPT"
    )
    stale = client.set_flow_run_state(run.id, states.Crashed(), expected_version=seen)
    assert stale.status == "REJECT" and stale.details == "stale version or lease"
    assert client.read_flow_run(run.id).state_type == StateType.RUNNING


def test_stale_lease_is_rejected(client) -> None:  # type: ignore[no-untyped-def]
    run = client.create_flow_run("etl", state=states.Scheduled())
    first = client.set_flow_run_state(run.id, states.Pending(), new_lease="lease-A")
    assert first.status == "ACCEPT"
    assert client.set_flow_run_state(run.id, states.Running(), lease="lease-A").status == "ACCEPT"
    # Another holder with an old or different lease token loses.
    assert client.set_flow_run_state(run.id, states.Completed(), lease="lease-B").status == (
        "REJECT"
    )
    assert client.set_flow_run_state(run.id, states.Completed(), lease="lease-A").status == (
        "ACCEPT"
    )


def test_unknown_run_is_not_found(client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ObjectNotFound):
        client.set_flow_run_state(uuid.uuid4(), states.Running())
    with pytest.raises(ObjectNotFound):
        client.read_flow_run(uuid.uuid4())


def _race_to_claim(client, run_id: uuid.UUID, contenders: int) -> list[str]:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(contenders)
    outcomes: list[str] = []
    lock = threading.Lock()

    def claim(token: str) -> None:
        barrier.wait()
        result = client.set_flow_run_state(run_id, states.Pending(), new_lease=token)
        with lock:
            outcomes.append(result.status)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_eight_threads_one_winner_consistent_history(client) -> None:  # type: ignore[no-untyped-def]
    for _ in range(20):
        run = client.create_flow_run("etl", state=states.Scheduled())
        outcomes = _race_to_claim(client, run.id, 8)
        assert outcomes.count("ACCEPT") == 1
        assert outcomes.count("REJECT") == 7
        history = [s.name for s in client.read_flow_run_states(run.id)]
        assert history == ["Scheduled", "Pending"]
        assert client.read_flow_run(run.id).version == 2


def test_state_indexes_follow_the_state(client) -> None:  # type: ignore[no-untyped-def]
    a = client.create_flow_run("etl", state=states.Pending())
    b = client.create_flow_run("other", state=states.Pending())
    client.set_flow_run_state(a.id, states.Running())
    running = client.read_flow_runs(states=[StateType.RUNNING])
    pending = client.read_flow_runs(states=[StateType.PENDING])
    assert [r.id for r in running] == [a.id]
    assert [r.id for r in pending] == [b.id]
    assert [r.id for r in client.read_flow_runs(flow_name="other")] == [b.id]
    both = client.read_flow_runs(states=[StateType.RUNNING, StateType.PENDING])
    assert {r.id for r in both} == {a.id, b.id}


def test_idempotency_key_returns_the_same_run(client) -> None:  # type: ignore[no-untyped-def]
    first = client.create_flow_run("etl", idempotency_key="nightly-2026-01-01")
    again = client.create_flow_run("etl", idempotency_key="nightly-2026-01-01")
    other = client.create_flow_run("etl", idempotency_key="nightly-2026-01-02")
    assert first.id == again.id != other.id


def test_scripts_are_reloaded_after_a_script_flush(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    run = client.create_flow_run("etl", state=states.Pending())
    redis_client.script_flush()
    assert client.set_flow_run_state(run.id, states.Running()).status == "ACCEPT"
    assert [s.name for s in client.read_flow_run_states(run.id)] == ["Pending", "Running"]


def _slot_keys(prefix: str) -> list[tuple[str, int | None]]:
    from prefect_lite.storage import keys

    return [(keys.record("slots-test", f"{prefix}-pool"), 2), (keys.record("slots", "q"), None)]


def test_slots_are_claimed_all_or_nothing_and_released_on_terminal_state(client) -> None:  # type: ignore[no-untyped-def]
    from prefect_lite.storage import runs

    slots = _slot_keys("a")
    ids = [client.create_flow_run("etl", state=states.Scheduled()).id for _ in range(3)]
    assert runs.claim_slots(ids[0], slots) == (True, None)
    assert runs.claim_slots(ids[1], slots) == (True, None)
    assert runs.claim_slots(ids[0], slots) == (True, None)  # re-claiming is idempotent
    assert runs.claim_slots(ids[2], slots) == (False, 0)  # the pool set is full
    client.set_flow_run_state(ids[0], states.Pending())
    client.set_flow_run_state(ids[0], states.Running())
    client.set_flow_run_state(ids[0], states.Completed())  # releases both slots
    assert runs.claim_slots(ids[2], slots) == (True, None)


def test_listing_limits_are_validated(client) -> None:  # type: ignore[no-untyped-def]
    from prefect_lite.exceptions import ValidationError

    with pytest.raises(ValidationError, match="limit"):
        client.read_flow_runs(limit=2**63)
    with pytest.raises(ValidationError, match="offset"):
        client.read_flow_runs(offset=-1)
    with pytest.raises(ValidationError, match="limit"):
        client.read_flows(limit=-5)
