"""Persisted results: storages, serializers, references in stored states, size limits."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import redis

from prefect_lite import flow, get_client, task
from prefect_lite.exceptions import (
    ConfigurationError,
    MissingResult,
    PayloadTooLarge,
    UnserializableValue,
)
from prefect_lite.results import (
    LocalFileSystem,
    PersistedResult,
    RedisStorage,
    load_result,
    write_result,
)
from prefect_lite.serializers import PickleSerializer
from prefect_lite.settings import temporary_settings
from prefect_lite.states import ResultRef, State, StateType
from prefect_lite.storage import keys
from tests.helpers import run_python


def client() -> Any:
    return get_client(sync_client=True)


def task_runs(state: State) -> list[Any]:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return sorted(client().read_task_runs(flow_run_id), key=lambda r: r.created)


@flow(persist_result=True)
def report(day: str) -> dict[str, Any]:
    return {"day": day, "rows": [1, 2, 3]}


def test_a_persisted_flow_result_is_read_back_from_the_stored_state(home: Path) -> None:
    state = report("mon", return_state=True)
    stored = client().read_flow_run(state.state_details.flow_run_id)
    assert stored.state is not None
    ref = stored.state.data
    assert isinstance(ref, ResultRef) and ref.storage == "local" and ref.serializer == "pickle"
    assert (home / "storage" / ref.key).is_file()
    assert stored.state.result() == {"day": "mon", "rows": [1, 2, 3]}


def test_another_process_reads_a_persisted_result_with_only_a_client() -> None:
    state = report("tue", return_state=True)
    proc = run_python(
        f"""
        import json, uuid
        from prefect_lite.client import get_client
        run_id = uuid.UUID("{state.state_details.flow_run_id}")
        print(json.dumps(get_client(sync_client=True).read_flow_run(run_id).state.result()))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"day": "tue", "rows": [1, 2, 3]}


def test_without_persistence_nothing_is_stored(home: Path) -> None:
    @flow
    def plain() -> int:
        return 3

    state = plain(return_state=True)
    assert state.result() == 3
    stored = client().read_flow_run(state.state_details.flow_run_id)
    assert stored.state is not None and stored.state.data is None
    assert not (home / "storage").exists()


def test_redis_storage_and_json_serializer(redis_client: redis.Redis) -> None:
    @task(result_storage=RedisStorage(), result_serializer="json")
    def numbers() -> list[int]:
        return [1, 2, 3]

    @flow
    def f() -> list[int]:
        return numbers()

    state = f(return_state=True)
    assert state.result() == [1, 2, 3]
    (run,) = task_runs(state)
    ref = run.state.data
    assert isinstance(ref, ResultRef) and (ref.storage, ref.serializer) == ("redis", "json")
    assert redis_client.get(keys.result_blob(ref.key)) == "[1,2,3]"
    assert client().read_task_run(run.id).state.result() == [1, 2, 3]


def test_storage_given_by_name_or_path(tmp_path: Path) -> None:
    @task(result_storage="redis")
    def in_redis() -> str:
        return "r"

    @task(result_storage=str(tmp_path / "results"), result_storage_key="out-{parameters[n]}")
    def in_dir(n: int) -> int:
        return n * 2

    @flow
    def f() -> tuple[str, int]:
        return in_redis(), in_dir(21)

    state = f(return_state=True)
    assert state.result() == ("r", 42)
    refs = {r.name: r.state.data for r in task_runs(state)}
    assert refs["in_redis-0"].storage == "redis"
    assert refs["in_dir-0"].storage == f"local:{tmp_path / 'results'}"
    assert refs["in_dir-0"].key == "out-21"
    assert (tmp_path / "results" / "out-21").is_file()
    assert load_result(ResultRef.model_validate(refs["in_dir-0"].model_dump())) == 42


def test_an_oversized_result_for_redis_storage_fails_the_task_clearly() -> None:
    @task(result_storage=RedisStorage())
    def big() -> str:
        return "x" * 5000

    @flow
    def f() -> str:
        return big()

    too_large = pytest.raises(PayloadTooLarge, match=r"bytes serialized; the limit is 1000 bytes")
    with temporary_settings(max_payload_bytes=1000), too_large:
        f()
    (run,) = client().read_flow_runs(flow_name="f")
    (task_run,) = client().read_task_runs(run.id)
    assert task_run.state_name == "Failed"
    assert "Could not persist the task's result" in (task_run.state.message or "")


def test_the_api_enforces_the_payload_limit_on_its_own() -> None:
    with temporary_settings(max_payload_bytes=100):
        with pytest.raises(PayloadTooLarge, match="the limit is 100 bytes"):
            client().write_result("k", "y" * 101)
        client().write_result("k", "y" * 100)
    assert client().read_result("k") == "y" * 100


def test_an_oversized_flow_result_fails_the_flow_run() -> None:
    @flow(result_storage="redis")
    def big_flow() -> bytes:
        return b"z" * 4000

    with temporary_settings(max_payload_bytes=1000):
        state = big_flow(return_state=True)
    assert state.type == StateType.FAILED
    assert "Could not persist the result" in (state.message or "")
    with pytest.raises(PayloadTooLarge):
        state.result()


def test_json_serializer_refuses_other_values_with_a_clear_error() -> None:
    @task(result_serializer="json")
    def not_json() -> object:
        return {1, 2}.__iter__()

    with pytest.raises(UnserializableValue, match="cannot store as JSON"):
        not_json()


def test_bad_storage_or_serializer_fails_the_run_with_a_clear_error() -> None:
    @task(result_storage=42)
    def bad_storage() -> int:
        return 1

    @task(result_serializer="yaml")
    def bad_serializer() -> int:
        return 1

    with pytest.raises(ConfigurationError, match=r"result_storage=42 is not a storage"):
        bad_storage()
    with pytest.raises(ConfigurationError, match=r"unknown result serializer 'yaml'"):
        bad_serializer()


def test_a_result_storage_key_that_cannot_be_filled_in_is_a_clear_error() -> None:
    @task(persist_result=True, result_storage_key="{parameters[missing]}")
    def t(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match=r"result_storage_key .* cannot be filled in"):
        t(1)


def test_a_missing_blob_is_a_clear_error(home: Path) -> None:
    state = report("wed", return_state=True)
    stored = client().read_flow_run(state.state_details.flow_run_id)
    assert stored.state is not None
    (home / "storage" / stored.state.data.key).unlink()
    with pytest.raises(MissingResult, match="does not exist"):
        stored.state.result()


def test_unknown_storage_in_a_reference_is_a_clear_error() -> None:
    with pytest.raises(MissingResult, match="unknown result storage 's3'"):
        load_result(ResultRef(storage="s3", key="k"))
    with pytest.raises(MissingResult, match="serializer 'yaml'"):
        load_result(ResultRef(storage="local", key="k", serializer="yaml"))


def test_a_reference_keeps_the_value_in_memory_unless_told_not_to(home: Path) -> None:
    @task(persist_result=True, cache_result_in_memory=False)
    def lean() -> list[int]:
        return [7]

    @task(persist_result=True)
    def kept() -> list[int]:
        return [8]

    state_lean = lean(return_state=True)
    state_kept = kept(return_state=True)
    assert isinstance(state_lean.data, PersistedResult) and not state_lean.data.has_value
    assert isinstance(state_kept.data, PersistedResult) and state_kept.data.has_value
    assert state_lean.result() == [7]  # read back from the file
    assert state_kept.result() == [8]


def test_local_storage_writes_atomically_and_rejects_escaping_keys(tmp_path: Path) -> None:
    storage = LocalFileSystem(tmp_path)
    ref = write_result({"a": 1}, storage, PickleSerializer(), key="nested/dir/value")
    assert ref.storage == f"local:{tmp_path}" and (tmp_path / "nested/dir/value").is_file()
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    for bad in ("../up", "/abs", "a//b", ""):
        with pytest.raises(ConfigurationError, match="invalid result key"):
            storage.write(bad, b"x")


def test_concurrent_writers_of_one_key_never_leave_a_torn_file(tmp_path: Path) -> None:
    storage = LocalFileSystem(tmp_path)
    blobs = [bytes([i]) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=storage.write, args=("same", b)) for b in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert storage.read("same") in blobs


def test_redis_storage_refuses_binary_blobs() -> None:
    class Raw:
        type = "raw"

        def dumps(self, obj: Any) -> bytes:
            return b"\xff\xfe"

        def loads(self, blob: bytes) -> Any:
            return blob

    @task(result_storage=RedisStorage(), result_serializer=Raw())
    def t() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="RedisStorage stores text"):
        t()


def test_result_handlers_reject_bad_keys_and_missing_blobs() -> None:
    from prefect_lite.exceptions import ObjectNotFound, ValidationError

    with pytest.raises(ValidationError, match="invalid key"):
        client().write_result("", "x")
    with pytest.raises(ValidationError, match="the limit is 1024"):
        client().read_result("k" * 1025)
    with pytest.raises(ObjectNotFound, match="no result stored under 'nope'"):
        client().read_result("nope")
    with pytest.raises(ObjectNotFound):
        client().delete_result("nope")


def test_results_caching_and_transactions_over_http(redis_client: redis.Redis) -> None:
    from prefect_lite.server import create_app
    from prefect_lite.settings import Settings
    from prefect_lite.transactions import Transaction
    from tests._live_server import serve

    calls: list[int] = []

    @task(cache_key_fn=lambda ctx, args: "http", result_storage=RedisStorage())
    def remote_task() -> dict[str, int]:
        calls.append(1)
        return {"n": 1}

    app = create_app(Settings(api_key=None))
    with (
        serve(app) as base,
        temporary_settings(api_url=f"{base}/api"),
        get_client(sync_client=True) as remote,
    ):
        assert not remote.is_local
        assert remote_task(return_state=True).name == "Completed"
        state = remote_task(return_state=True)
        assert state.name == "Cached" and state.result() == {"n": 1}
        with Transaction(key="over-http"):
            remote_task(return_state=True)
        with Transaction(key="over-http") as txn:
            assert txn.is_committed
        assert remote.read_cache_record("nope") is None
        with temporary_settings(max_payload_bytes=10), pytest.raises(PayloadTooLarge):
            remote.write_result("big", "x" * 11)
    assert calls == [1]
    assert redis_client.keys("*:result:*")
