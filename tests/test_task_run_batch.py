"""The task run batch script: per-run order, statuses in order, fast and generic paths."""

from __future__ import annotations

import uuid

from prefect_lite import states
from prefect_lite.schemas import TaskRun
from prefect_lite.storage import runs, task_batch


def _run(flow_run_id: uuid.UUID | None = None) -> TaskRun:
    return TaskRun(name="t-0", task_key="mod.t", flow_run_id=flow_run_id)


def test_interleaved_runs_keep_their_own_order_and_statuses_map_back() -> None:
    flow_run_id = uuid.uuid4()
    a, b = _run(flow_run_id), _run(flow_run_id)
    changes = [
        ("create", a.id, states.Pending(), a, False),
        ("create", b.id, states.Pending(), b, False),
        ("propose", a.id, states.Running(), None, False),
        ("propose", b.id, states.Running(), None, False),
        ("propose", b.id, states.Pending(), None, False),  # RUNNING -> PENDING: rejected
        ("propose", a.id, states.Completed(), None, False),
        ("propose", b.id, states.Failed(), None, False),
    ]
    statuses = task_batch.apply_task_changes(changes)
    assert statuses == ["CREATED", "CREATED", "ACCEPT", "ACCEPT", "REJECT", "ACCEPT", "ACCEPT"]
    first, second = runs.read_runs("task", [a.id, b.id])
    assert first.state_name == "Completed" and first.version == 3 and first.run_count == 1
    assert first.start_time is not None and first.end_time is not None
    assert second.state_name == "Failed" and second.version == 3
    assert [s.name for s in runs.history("task", a.id)] == ["Pending", "Running", "Completed"]
    assert [s.name for s in runs.history("task", b.id)] == ["Pending", "Running", "Failed"]
    assert set(runs.task_run_ids_of(flow_run_id)) == {str(a.id), str(b.id)}


def test_later_batches_continue_a_run_and_terminal_states_stay_terminal() -> None:
    a = _run()
    assert task_batch.apply_task_changes([("create", a.id, states.Pending(), a, False)]) == [
        "CREATED"
    ]
    later = [
        ("propose", a.id, states.Running(), None, False),
        ("propose", a.id, states.Completed(), None, False),
        ("propose", a.id, states.Running(), None, False),
    ]
    assert task_batch.apply_task_changes(later) == ["ACCEPT", "ACCEPT", "REJECT"]
    forced = [("propose", a.id, states.Running(), None, True)]
    assert task_batch.apply_task_changes(forced) == ["ACCEPT"]
    assert runs.read_run("task", a.id).run_count == 2


def test_creating_an_existing_run_is_reported_and_changes_nothing() -> None:
    a = _run()
    task_batch.apply_task_changes([("create", a.id, states.Completed(), a, False)])
    again = task_batch.apply_task_changes(
        [
            ("create", a.id, states.Pending(), a, False),
            ("propose", a.id, states.Running(), None, False),
        ]
    )
    assert again == ["EXISTS", "REJECT"]
    assert [s.name for s in runs.history("task", a.id)] == ["Completed"]


def test_a_chain_the_table_refuses_takes_the_checked_path() -> None:
    a = _run()
    changes = [
        ("create", a.id, states.Completed(), a, False),
        ("propose", a.id, states.Running(), None, False),
    ]
    assert task_batch.apply_task_changes(changes) == ["CREATED", "REJECT"]
    assert runs.read_run("task", a.id).state_name == "Completed"
