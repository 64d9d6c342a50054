"""Blocks: save/load/delete, type registration by slug, built-ins, secrets never shown."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime

import pydantic
import pytest
import redis
from pydantic import BaseModel, SecretStr

from prefect_lite.blocks import Block
from prefect_lite.blocks.core import kebab_case
from prefect_lite.blocks.system import JSON, DateTime, Secret, String
from prefect_lite.client import get_client
from prefect_lite.exceptions import (
    ObjectAlreadyExists,
    ObjectNotFound,
    PayloadTooLarge,
    ValidationError,
)
from prefect_lite.schemas import BlockDocument
from prefect_lite.settings import temporary_settings
from tests.helpers import run_python


class MyConfig(Block):
    """Settings of a service."""

    url: str
    retries: int = 3


class Credentials(BaseModel):
    user: str
    password: SecretStr


class Connection(Block):
    _block_type_slug = "db-connection"

    host: str
    credentials: Credentials
    replicas: list[Credentials] = []
    token: SecretStr | None = None


def test_the_seed_example_save_then_load() -> None:
    block_id = MyConfig(url="https://example.com").save("prod")

    loaded = MyConfig.load("prod")

    assert isinstance(block_id, uuid.UUID)
    assert loaded == MyConfig(url="https://example.com", retries=3)
    assert loaded._block_document_id == block_id and loaded._block_document_name == "prod"


def test_the_base_class_loads_any_registered_type_by_slug() -> None:
    MyConfig(url="u").save("prod")
    JSON(value={"a": 1}).save("settings")

    assert Block.load("my-config/prod") == MyConfig(url="u")
    loaded = Block.load("json/settings")
    assert isinstance(loaded, JSON) and loaded.value == {"a": 1}
    assert MyConfig.load("my-config/prod") == MyConfig(url="u")


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("MyConfig", "my-config"),
        ("JSON", "json"),
        ("DateTime", "date-time"),
        ("S3Bucket", "s3-bucket"),
        ("HTTPClient", "http-client"),
        ("snake_Case", "snake-case"),
    ],
)
def test_slugs_are_the_class_name_in_kebab_case(name: str, slug: str) -> None:
    assert kebab_case(name) == slug


def test_slug_and_name_can_be_chosen() -> None:
    class Named(Block):
        _block_type_name = "Warehouse Settings"

    assert Named.get_block_type_slug() == "warehouse-settings"
    assert Connection.get_block_type_slug() == "db-connection"
    assert (Secret.get_block_type_slug(), DateTime.get_block_type_slug()) == ("secret", "date-time")


def test_a_bad_slug_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(ValidationError, match=r"invalid block type slug of .*Bad.*'Not_Ok'"):

        class Bad(Block):
            _block_type_slug = "Not_Ok"


def test_save_of_an_existing_name_needs_overwrite_which_keeps_the_id() -> None:
    first = MyConfig(url="one").save("prod")
    with pytest.raises(ObjectAlreadyExists, match=r"'my-config/prod' already exists.*overwrite"):
        MyConfig(url="two").save("prod")
    assert MyConfig.load("prod").url == "one"

    again = MyConfig(url="two").save("prod", overwrite=True)

    assert again == first and MyConfig.load("prod").url == "two"


def test_a_missing_block_names_its_type_and_name() -> None:
    with pytest.raises(ObjectNotFound, match=r"^no block 'my-config/nope'$"):
        MyConfig.load("nope")
    with pytest.raises(ObjectNotFound, match=r"no block 'json/my-config'"):
        Block.load("json/my-config")


def test_delete() -> None:
    MyConfig(url="u").save("prod")
    MyConfig.delete("prod")
    with pytest.raises(ObjectNotFound, match="no block 'my-config/prod'"):
        MyConfig.load("prod")
    with pytest.raises(ObjectNotFound, match="no block 'my-config/prod'"):
        MyConfig.delete("prod")
    with get_client(sync_client=True) as client:
        assert client.read_block_documents() == []


@pytest.mark.parametrize("name", ["Prod", "my_block", "a b", "", "a:b"])
def test_bad_document_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="invalid block document name"):
        MyConfig(url="u").save(name)


def test_bad_addresses_are_refused() -> None:
    String(value="s").save("x")
    with pytest.raises(ValidationError, match=r"Block.load needs 'SLUG/NAME'"):
        Block.load("x")
    with pytest.raises(ValidationError, match=r"'string/x' is a 'string' block; JSON.load reads"):
        JSON.load("string/x")
    with pytest.raises(ValidationError, match="invalid block type slug 'Str'"):
        Block.load("Str/x")
    with pytest.raises(ValidationError, match="Block itself cannot be saved"):
        Block().save("x")


def test_a_type_no_imported_module_defines_is_named() -> None:
    document = BlockDocument(name="x", block_type_slug="not-imported", data={"a": 1})
    with get_client(sync_client=True) as client:
        client.create_block_document(document)
    with pytest.raises(ObjectNotFound, match="'not-imported', which no imported module defines"):
        Block.load("not-imported/x")


def test_a_document_that_no_longer_fits_its_class_is_a_clear_error() -> None:
    document = BlockDocument(name="old", block_type_slug="my-config", data={"retries": "many"})
    with get_client(sync_client=True) as client:
        client.create_block_document(document)
    with pytest.raises(
        ValidationError, match="'my-config/old' does not fit MyConfig any more: url"
    ):
        MyConfig.load("old")


def test_builtin_blocks_round_trip() -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    JSON(value={"list": [1, 2], "none": None}).save("j")
    String(value="hello").save("s")
    DateTime(value=when).save("d")

    assert JSON.load("j").value == {"list": [1, 2], "none": None}
    assert String.load("s").value == "hello"
    assert DateTime.load("d").value == when
    with pytest.raises(pydantic.ValidationError, match="value"):
        JSON(value={"when": when})  # type: ignore[dict-item]


def test_a_block_over_the_payload_limit_is_refused() -> None:
    with (
        temporary_settings(max_payload_bytes=1000),
        pytest.raises(
            PayloadTooLarge, match=r"'string/big' is \d+ bytes as JSON; the limit is 1000"
        ),
    ):
        String(value="x" * 2000).save("big")


def test_saved_types_are_recorded_with_their_schema() -> None:
    MyConfig(url="u").save("a")
    MyConfig(url="u").save("b")
    Secret(value="s").save("c")
    String.register_type_and_schema()
    with get_client(sync_client=True) as client:
        types = {t.slug: t for t in client.read_block_types()}
        assert sorted(types) == ["my-config", "secret", "string"]
        assert types["my-config"].description == "Settings of a service."
        assert types["my-config"].block_schema["properties"]["url"]["type"] == "string"
        assert types["secret"].block_schema["secret_fields"] == ["value"]
        assert client.read_block_type_by_slug("string").name == "String"
        with pytest.raises(ObjectNotFound, match="no block type 'nope'"):
            client.read_block_type_by_slug("nope")
        with pytest.raises(ValidationError, match="limit must be between"):
            client.read_block_types(limit=2**63)
        with pytest.raises(ValidationError, match="offset must be between"):
            client.read_block_documents(offset=-1)


def test_async_save_load_delete() -> None:
    async def main() -> MyConfig:
        await MyConfig(url="async").asave("a")
        loaded = await MyConfig.aload("a")
        await MyConfig.adelete("a")
        return loaded

    assert asyncio.run(main()).url == "async"
    with pytest.raises(ObjectNotFound):
        MyConfig.load("a")


# -- secrets


def test_secret_get_returns_the_value_after_a_round_trip() -> None:
    Secret(value="sk-1234567890").save("api-key")
    Secret(value={"username": "johndoe", "password": "s3cr3t"}).save("login")

    assert Secret.load("api-key").get() == "sk-1234567890"
    assert Secret.load("login").get() == {"username": "johndoe", "password": "s3cr3t"}
    assert Block.load("secret/api-key").get() == "sk-1234567890"  # type: ignore[attr-defined]
    assert Secret(value=SecretStr("given")).get() == "given"


@pytest.mark.parametrize("value", ["hunter2-plain", {"password": "hunter2-plain"}])
def test_a_secret_is_never_printed(value: object, caplog: pytest.LogCaptureFixture) -> None:
    Secret(value=value).save("pw")
    secret = Secret.load("pw")
    logger = logging.getLogger("test.secret")
    with caplog.at_level(logging.INFO):
        logger.info("loaded %s / %r", secret, secret)
        logger.info(f"loaded {secret} {secret!r} {secret.value}")
        logger.info("dump %s", secret.model_dump())

    shown = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret.value}",
        str(secret.model_dump()),
        secret.model_dump_json(),
        json.dumps(secret.model_dump(mode="json")),
        caplog.text,
    ]
    for text in shown:
        assert "hunter2" not in text
    assert "**********" in repr(secret) and "**********" in secret.model_dump_json()


def test_a_rejected_secret_is_not_echoed_in_the_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="non-string key") as caught:
        Secret(value={1: "hunter2-plain"})
    assert "hunter2" not in str(caught.value)


def test_readers_get_secrets_masked_unless_they_ask(redis_client: redis.Redis) -> None:
    Secret(value="hunter2-plain").save("pw")
    with get_client(sync_client=True) as client:
        shown = client.read_block_document_by_name("secret", "pw")
        listed = client.read_block_documents()
        by_id = client.read_block_document(shown.id)
        revealed = client.read_block_document_by_name("secret", "pw", include_secrets=True)
    assert shown.data == {"value": "********"} == by_id.data
    assert [d.data for d in listed] == [{"value": "********"}]
    assert revealed.data == {"value": "hunter2-plain"}
    # Documented: the store holds the real value (as Prefect's database does).
    stored = [redis_client.get(k) for k in redis_client.keys("*secret/pw")]
    assert any("hunter2-plain" in (raw or "") for raw in stored)


def test_secret_fields_in_nested_models_and_containers_are_masked() -> None:
    block = Connection(
        host="db",
        credentials=Credentials(user="u", password=SecretStr("pw-one")),
        replicas=[Credentials(user="r", password=SecretStr("pw-two"))],
        token=SecretStr("tok-three"),
    )
    block.save("main")
    with get_client(sync_client=True) as client:
        shown = client.read_block_document_by_name("db-connection", "main")

    assert shown.block_schema["secret_fields"] == ["credentials.password", "replicas", "token"]
    assert shown.data == {
        "host": "db",
        "credentials": {"user": "u", "password": "********"},
        "replicas": "********",
        "token": "********",
    }
    loaded = Connection.load("main")
    assert loaded.credentials.password.get_secret_value() == "pw-one"
    assert loaded.replicas[0].password.get_secret_value() == "pw-two"
    assert loaded.token is not None and loaded.token.get_secret_value() == "tok-three"


def test_other_processes_load_blocks_saved_here() -> None:
    Secret(value="from-parent").save("token")
    MyConfig(url="https://parent", retries=7).save("prod")

    done = run_python(
        """
        from prefect_lite.blocks.core import Block

        class MyConfig(Block):
            url: str
            retries: int = 3

        print(Block.load("secret/token").get())
        print(MyConfig.load("prod").retries)
        MyConfig(url="https://child").save("child")
        """
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["from-parent", "7"]
    assert MyConfig.load("child").url == "https://child"
