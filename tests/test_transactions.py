"""Transactions: commit and rollback hooks, nesting, keys as cache records, isolation
across processes."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis

from prefect_lite import flow, get_client, task
from prefect_lite.exceptions import ValidationError
from prefect_lite.transactions import Transaction, get_transaction, transaction
from tests.helpers import spawn_python


def client() -> Any:
    return get_client(sync_client=True)


# ------------------------------------------------------------- seed 001 examples


@task
def update_database(data: Any) -> str:
    # Database update logic
    print(f"Updating database with {data}")
    return f"Updated: {data}"


@task
def send_notification(message: str) -> str:
    # Notification logic
    print(f"Sending notification: {message}")
    if "explode" in message:
        raise RuntimeError("mail server down")
    return f"Sent: {message}"


@task
def log_audit(action: str) -> str:
    # Audit logging
    print(f"Audit log: {action}")
    return f"Logged: {action}"


@flow
def transactional_workflow(data: Any) -> dict[str, Any]:
    try:
        with Transaction(key="data-update", timeout=300) as txn:
            # All tasks in this context are part of the transaction
            update_result = update_database(data)
            notification_result = send_notification(f"Data updated: {data}")
            audit_result = log_audit(f"Updated data for {data}")
            # If any task fails, the entire transaction rolls back
            return {
                "update": update_result,
                "notification": notification_result,
                "audit": audit_result,
                "transaction_id": txn.key,
            }
    except Exception as e:
        # Handle transaction failure
        return {"error": str(e), "status": "rolled_back"}


# Manual transaction control
@flow
def manual_transaction_example() -> dict[str, Any]:
    txn = Transaction(key="manual-txn")
    try:
        txn.__enter__()
        # Do work
        result1 = update_database("batch1")
        result2 = update_database("batch2")
        # Explicit commit
        txn.commit()
        return {"results": [result1, result2], "status": "committed"}
    except Exception as e:
        # Explicit rollback
        txn.rollback()
        return {"error": str(e), "status": "rolled_back"}
    finally:
        if not (txn.is_committed or txn.is_rolled_back):
            txn.__exit__(None, None, None)


def test_seed_001_transactional_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    expected = {
        "update": "Updated: rows",
        "notification": "Sent: Data updated: rows",
        "audit": "Logged: Updated data for rows",
        "transaction_id": "data-update",
    }
    assert transactional_workflow("rows") == expected
    assert capsys.readouterr().out.count("\n") == 3
    state = transactional_workflow("rows", return_state=True)  # the key is committed
    assert state.result() == expected
    assert capsys.readouterr().out == ""  # nothing ran again
    runs = client().read_task_runs(state.state_details.flow_run_id)
    assert sorted(r.state_name for r in runs) == ["Cached", "Cached", "Cached"]


def test_seed_001_transactional_workflow_rolls_back_on_failure() -> None:
    assert transactional_workflow("explode") == {
        "error": "mail server down",
        "status": "rolled_back",
    }
    with Transaction(key="data-update") as txn:  # nothing was committed under the key
        assert not txn.is_committed


def test_seed_001_manual_transaction(capsys: pytest.CaptureFixture[str]) -> None:
    expected = {"results": ["Updated: batch1", "Updated: batch2"], "status": "committed"}
    assert manual_transaction_example() == expected
    assert "batch2" in capsys.readouterr().out
    assert manual_transaction_example() == expected
    assert capsys.readouterr().out == ""
    assert get_transaction() is None


# ------------------------------------------------------------------- hooks and state

events: list[str] = []


def recording_task(name: str) -> Any:
    @task(name=name)
    def work() -> str:
        events.append(f"run {name}")
        return name

    @work.on_commit
    def committed(txn: Transaction) -> None:
        events.append(f"commit {name}")

    @work.on_rollback
    def rolled_back(txn: Transaction) -> None:
        events.append(f"rollback {name}")

    return work


a, b, c = recording_task("a"), recording_task("b"), recording_task("c")


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    events.clear()


def test_commit_hooks_run_in_order_when_the_block_ends() -> None:
    with Transaction() as txn:
        a()
        b()
        assert events == ["run a", "run b"]
        assert get_transaction() is txn
    assert events == ["run a", "run b", "commit a", "commit b"]
    assert txn.is_committed and txn.is_committed() and not txn.is_rolled_back
    assert get_transaction() is None


def test_a_failure_rolls_back_with_hooks_newest_first_and_is_reraised() -> None:
    @flow
    def f() -> None:
        with Transaction():
            a()
            b()
            c()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        f()
    assert events == ["run a", "run b", "run c", "rollback c", "rollback b", "rollback a"]


def test_a_failed_task_rolls_back_its_transaction_even_if_caught() -> None:
    @task
    def fails() -> None:
        raise ValueError("bad row")

    with Transaction() as txn:
        a()
        with pytest.raises(ValueError):
            fails()
        assert txn.is_rolled_back
        b()  # the transaction is over: b does not join it
    assert events == ["run a", "rollback a", "run b"]
    assert txn.is_rolled_back and not txn.is_committed


def test_hooks_receive_the_transaction_and_a_failing_hook_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Any] = []

    @task
    def t() -> None:
        pass

    @t.on_rollback
    def first(txn: Transaction) -> None:
        seen.append(txn)

    @t.on_rollback
    def broken(txn: Transaction) -> None:
        raise OSError("cannot undo")

    with pytest.raises(KeyError), Transaction(key="hooks") as txn:
        t()
        raise KeyError("x")
    assert seen == [txn]
    assert "A rollback hook of transaction 'hooks' failed" in caplog.text


def test_a_commit_hook_that_raises_rolls_the_transaction_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @task
    def t() -> None:
        pass

    @t.on_commit
    def explode(txn: Transaction) -> None:
        raise RuntimeError("hook failed")

    with Transaction(key="k") as txn:
        t()
    assert txn.is_rolled_back
    assert "Could not commit transaction 'k'" in caplog.text
    with Transaction(key="k") as again:
        assert not again.is_committed


def test_nested_child_commits_with_its_parent() -> None:
    with Transaction() as parent:
        a()
        with Transaction() as child:
            b()
        assert not child.is_committed and "commit b" not in events
    assert child.is_committed and parent.is_committed
    assert events == ["run a", "run b", "commit b", "commit a"]


def test_a_parent_rollback_rolls_back_its_children() -> None:
    with pytest.raises(RuntimeError), Transaction() as parent:
        a()
        with Transaction() as child:
            b()
        raise RuntimeError("late failure")
    assert parent.is_rolled_back and child.is_rolled_back
    assert events == ["run a", "run b", "rollback a", "rollback b"]


def test_a_child_rollback_rolls_back_its_parent() -> None:
    with Transaction() as parent:
        a()
        with pytest.raises(ValueError), Transaction() as child:
            b()
            raise ValueError("child failed")
    assert child.is_rolled_back and parent.is_rolled_back
    assert events == ["run a", "run b", "rollback b", "rollback a"]


def test_by_hand_and_the_helper() -> None:
    txn = Transaction()
    txn.__enter__()
    a()
    assert txn.commit() is True
    assert txn.commit() is False and txn.rollback() is False
    assert get_transaction() is None
    txn.__exit__(None, None, None)  # harmless after a commit
    with transaction(key="helper") as helped:
        helped.set("rows", [1])
        with Transaction() as inner:
            assert inner.get("rows") == [1]
            assert inner.get("nope", "dflt") == "dflt"
            with pytest.raises(ValueError, match="no value named 'nope'"):
                inner.get("nope")
    with pytest.raises(RuntimeError, match="already entered"):
        helped.__enter__()


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="invalid transaction key"):
        Transaction(key="")
    with pytest.raises(ValueError, match="invalid transaction key"):
        Transaction(key="x" * 513)
    with pytest.raises(ValueError, match="timeout must be seconds > 0"):
        Transaction(key="k", timeout=0)
    with pytest.raises(ValidationError, match="hold_seconds must be"):
        client().acquire_transaction_lock("k", "me", float("nan"))
    with pytest.raises(ValidationError, match="invalid holder"):
        client().release_transaction_lock("k", "")


# -------------------------------------------------------------- keys as cache records


def test_cache_records_are_written_only_when_the_transaction_commits() -> None:
    calls: list[int] = []

    @task(cache_key_fn=lambda ctx, args: "k")
    def cached() -> int:
        calls.append(1)
        return 1

    with pytest.raises(RuntimeError), Transaction():
        assert cached(return_state=True).name == "Completed"
        assert cached(return_state=True).name == "Cached"  # staged, visible inside
        raise RuntimeError("abort")
    assert cached(return_state=True).name == "Completed"  # nothing was written
    assert cached(return_state=True).name == "Cached"
    assert calls == [1, 1]


def test_a_committed_key_replays_its_task_runs_as_cached() -> None:
    @flow
    def f(rows: int, overwrite: bool = False) -> list[str]:
        with Transaction(key="nightly", overwrite=overwrite) as txn:
            out = [a(), b(), str(txn.is_committed)]
        return out

    assert f(1) == ["a", "b", "False"]
    assert f(1) == ["a", "b", "True"]
    assert events == ["run a", "run b", "commit a", "commit b"]
    state = f(1, overwrite=True, return_state=True)
    assert state.result() == ["a", "b", "False"]
    assert events[-2:] == ["commit a", "commit b"]
    runs = client().read_task_runs(state.state_details.flow_run_id)
    assert sorted(r.state_name for r in runs) == ["Completed", "Completed"]


# ---------------------------------------------------------- isolation across processes

_CONTENDER = """
    import logging, os, redis
    from prefect_lite.transactions import Transaction

    role = os.environ["ROLE"]
    r = redis.Redis.from_url(os.environ["PREFECT_LITE_REDIS_URL"], decode_responses=True)

    class Announce(logging.Handler):
        def emit(self, record):
            if "held by another run" in record.getMessage():
                r.rpush("events", f"wait:{role}")
                r.rpush("b-waiting", 1)

    log = logging.getLogger("prefect_lite.transactions")
    log.addHandler(Announce())
    log.setLevel(logging.INFO)
    if role == "B":
        assert r.blpop("a-inside", timeout=30)
    with Transaction(key="shared", timeout=30) as txn:
        r.rpush("events", f"enter:{role}")
        if role == "A":
            r.rpush("a-inside", 1)
            assert r.blpop("b-waiting", timeout=30)
        r.rpush("events", f"exit:{role}")
    print(role, bool(txn.is_committed))
"""


def test_same_key_transactions_in_two_processes_run_one_after_the_other(
    redis_client: redis.Redis,
) -> None:
    procs = {role: spawn_python(_CONTENDER, env={"ROLE": role}) for role in ("B", "A")}
    for role, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"{role}: {err}"
        assert out.strip() == f"{role} True"
    assert redis_client.lrange("events", 0, -1) == [
        "enter:A",
        "wait:B",
        "exit:A",
        "enter:B",
        "exit:B",
    ]


def test_the_lock_of_a_dead_holder_expires_after_its_timeout(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    dead = spawn_python(
        """
        import os
        from prefect_lite.transactions import Transaction
        Transaction(key="orphan", timeout=2).__enter__()
        print("locked", flush=True)
        os._exit(0)
        """
    )
    out, err = dead.communicate(timeout=60)
    assert out.strip() == "locked", err
    caplog.set_level(logging.INFO, "prefect_lite.transactions")
    with Transaction(key="orphan", timeout=5) as txn:
        assert not txn.is_committed
    assert "waiting for it" in caplog.text


def test_task_runs_in_a_transaction_without_a_key_store_nothing(home: Any) -> None:
    with Transaction():
        a()
    assert events == ["run a", "commit a"]
    assert not (home / "storage").exists()


def test_a_failed_task_in_a_child_rolls_back_the_parent_too() -> None:
    @task
    def fails() -> None:
        raise ValueError("bad row")

    with Transaction() as parent:
        a()
        with Transaction() as child:
            b()
            with pytest.raises(ValueError):
                fails()
        c()  # after the rollback: joins nothing
    assert child.is_rolled_back and parent.is_rolled_back
    assert events == ["run a", "run b", "rollback b", "rollback a", "run c"]


def test_a_child_that_cannot_commit_rolls_back_its_parent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @task
    def t() -> None:
        pass

    @t.on_commit
    def explode(txn: Transaction) -> None:
        raise RuntimeError("hook failed")

    with Transaction() as parent:
        a()
        with Transaction() as child:
            t()
    assert child.is_rolled_back and parent.is_rolled_back
    assert events == ["run a", "rollback a"]
