"""Variables: the seed's examples, every bad-input path, async variants, other processes."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime
from typing import Any

import pytest

import prefect_lite
from prefect_lite.client import get_client
from prefect_lite.exceptions import (
    ObjectAlreadyExists,
    PayloadTooLarge,
    UserError,
    ValidationError,
)
from prefect_lite.schemas import MAX_JSON_DEPTH, MAX_VARIABLE_VALUE_LENGTH
from prefect_lite.variables import Variable
from tests.helpers import run_python


def test_the_seed_example_set_get_and_overwrite() -> None:
    created = Variable.set(name="my_var", value="test_value", tags=["hi", "there"])
    assert created == Variable(name="my_var", value="test_value", tags=["hi", "there"])
    assert Variable.get("my_var") == "test_value"

    updated = Variable.set(name="my_var", value={"a": [1, 2.5, None, True]}, overwrite=True)

    assert updated.value == {"a": [1, 2.5, None, True]} and updated.tags == []
    assert Variable.get("my_var") == {"a": [1, 2.5, None, True]}


def test_the_seed_example_async() -> None:
    async def main() -> tuple[Any, Any, Any]:
        await Variable.aset(name="my_var", value=[1, "two"], tags=["t"])
        got = await Variable.aget("my_var")
        missing = await Variable.aget("nope", default="fallback")
        await Variable.aset(name="my_var", value=3, overwrite=True)
        return got, missing, await Variable.aget("my_var")

    assert asyncio.run(main()) == ([1, "two"], "fallback", 3)


def test_get_of_a_missing_variable_returns_the_default() -> None:
    assert Variable.get("missing") is None
    assert Variable.get("missing", default={"x": 1}) == {"x": 1}


@pytest.mark.parametrize("value", ["", 0, -1.5, False, None, [], {}, {"nested": {"deep": [[]]}}])
def test_every_json_value_round_trips(value: Any) -> None:
    Variable.set("v", value)
    assert Variable.get("v", default="absent") == value


def test_variable_is_exported_at_the_top_level() -> None:
    assert prefect_lite.Variable is Variable


def test_set_of_an_existing_name_needs_overwrite() -> None:
    Variable.set("region", "eu")
    with pytest.raises(ObjectAlreadyExists, match=r"'region' already exists.*overwrite=True"):
        Variable.set("region", "us")
    assert Variable.get("region") == "eu"


def test_overwrite_keeps_the_record_identity_and_replaces_the_tags() -> None:
    Variable.set("region", "eu", tags=["a"])
    with get_client(sync_client=True) as client:
        before = client.read_variable_by_name("region")
        Variable.set("region", "us", tags=["b"], overwrite=True)
        after = client.read_variable_by_name("region")
    assert (after.id, after.created) == (before.id, before.created)
    assert (after.value, after.tags) == ("us", ["b"])
    assert after.updated >= before.updated


def test_concurrent_creators_of_one_name_do_not_both_win() -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        barrier.wait()
        try:
            Variable.set("contended", i)
            outcomes.append("won")
        except ObjectAlreadyExists:
            outcomes.append("lost")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (object(), r"value is of type object, not a JSON value"),
        (datetime(2024, 1, 1), r"value is of type datetime"),
        ({"a", "b"}, r"value is of type set"),
        ((1, 2), r"value is of type tuple"),
        (b"bytes", r"value is of type bytes"),
        ({1: "one"}, r"non-string key 1"),
        (float("nan"), r"nan, which JSON cannot represent"),
        (
            {"ok": [1, {"when": datetime(2024, 1, 1)}]},
            r"value\['ok'\]\[1\]\['when'\] is of type datetime",
        ),
    ],
)
def test_non_json_values_are_refused_with_the_offending_path(value: Any, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as caught:
        Variable.set("bad", value)
    assert "use str, int, float, bool, None" in str(caught.value)
    assert Variable.get("bad", default="absent") == "absent"


def test_values_nested_too_deeply_are_refused() -> None:
    fits: list[Any] = []
    deep = fits
    for _ in range(MAX_JSON_DEPTH - 1):
        deep.append([])
        deep = deep[0]
    Variable.set("deep", fits)
    assert Variable.get("deep") == fits

    with pytest.raises(ValidationError, match=f"nests deeper than {MAX_JSON_DEPTH} levels"):
        Variable.set("deeper", [fits])


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("My_Var", "lowercase letters"),
        ("has space", "lowercase letters"),
        ("a:b", "lowercase letters"),
        ("a/b", "lowercase letters"),
        ("", "lowercase letters"),
        (12, "lowercase letters"),
        ("x" * 256, "256 characters long; the limit is 255"),
    ],
)
def test_bad_names_are_refused_by_set_get_and_unset(name: Any, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Variable.set(name, 1)
    with pytest.raises(ValidationError, match=why):
        Variable.get(name, default=0)
    with pytest.raises(ValidationError, match=why):
        Variable.unset(name)


def test_names_use_lowercase_digits_underscores_and_dashes_up_to_255() -> None:
    for name in ("a", "snake_case-and-dash-9", "x" * 255, "idx", "alias"):
        Variable.set(name, name)
    for name in ("a", "snake_case-and-dash-9", "x" * 255, "idx", "alias"):
        assert Variable.get(name) == name
    with get_client(sync_client=True) as client:
        assert len(client.read_variables()) == 5


def test_the_value_size_limit_is_prefects() -> None:
    at_limit = "x" * (MAX_VARIABLE_VALUE_LENGTH - 2)  # the JSON adds two quotes
    Variable.set("big", at_limit)
    assert Variable.get("big") == at_limit

    with pytest.raises(PayloadTooLarge, match=r"5001 characters as JSON; the limit is 5000"):
        Variable.set("bigger", at_limit + "x")
    with pytest.raises(PayloadTooLarge):
        Variable.set("big", {"k": at_limit}, overwrite=True)
    assert Variable.get("big") == at_limit


def test_tags_must_be_strings() -> None:
    with pytest.raises(ValidationError, match="tags must be a list of strings"):
        Variable.set("tagged", 1, tags=["ok", 2])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="tags must be a list of strings"):
        Variable.set("tagged", 1, tags="solo")  # type: ignore[arg-type]


def test_unset_says_whether_there_was_a_variable() -> None:
    Variable.set("gone", 1)
    assert Variable.unset("gone") is True
    assert Variable.unset("gone") is False
    assert Variable.get("gone") is None

    async def main() -> tuple[bool, bool]:
        await Variable.aset("agone", 1)
        return await Variable.aunset("agone"), await Variable.aunset("agone")

    assert asyncio.run(main()) == (True, False)


def test_the_api_applies_the_same_rules_to_direct_callers() -> None:
    with get_client(sync_client=True) as client:
        with pytest.raises(ValidationError, match="invalid variable name"):
            client.create_variable("Bad", 1)
        with pytest.raises(ValidationError, match="not a JSON value"):
            client.create_variable("ok", object())
        with pytest.raises(PayloadTooLarge):
            client.create_variable("ok", "y" * 6000)
        with pytest.raises(UserError, match="no variable named 'ok'"):
            client.read_variable_by_name("ok")
        with pytest.raises(UserError, match="no variable named 'ok'"):
            client.delete_variable_by_name("ok")
        with pytest.raises(ValidationError, match="limit must be between 1 and 10000, not -1"):
            client.read_variables(limit=-1)
        with pytest.raises(ValidationError, match="offset must be between 0 and"):
            client.read_variables(offset=2**63)


def test_read_variables_filters_by_prefix_and_tags_with_paging() -> None:
    for i in range(5):
        Variable.set(f"app_{i}", i, tags=["app", "even" if i % 2 == 0 else "odd"])
    Variable.set("other", "x", tags=["app"])
    with get_client(sync_client=True) as client:
        names = [v.name for v in client.read_variables(name_prefix="app_")]
        assert names == [f"app_{i}" for i in range(5)]
        assert [v.name for v in client.read_variables(limit=2, offset=1)] == ["app_1", "app_2"]
        evens = client.read_variables(tags=["app", "even"])
        assert [v.name for v in evens] == ["app_0", "app_2", "app_4"]
        assert [v.name for v in client.read_variables(tags=["even"], offset=1, limit=1)] == [
            "app_2"
        ]
        assert [v.name for v in client.read_variables(tags=["app"], name_prefix="o")] == ["other"]


def test_another_process_reads_and_writes_the_same_variables() -> None:
    Variable.set("shared", {"from": "parent"}, tags=["x"])

    done = run_python(
        """
        import json
        from prefect_lite.variables import Variable
        print(json.dumps(Variable.get("shared")))
        Variable.set("reply", ["from", "child"])
        """
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"from": "parent"}
    assert Variable.get("reply") == ["from", "child"]
