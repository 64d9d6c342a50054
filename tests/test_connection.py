"""Connections to a configured Redis (the session's real server)."""

from __future__ import annotations

import os
import socket

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from prefect_lite.exceptions import ConfigurationError, StoreUnavailable
from prefect_lite.settings import temporary_settings
from prefect_lite.storage.connection import (
    check_connection,
    describe,
    get_redis,
    get_redis_bytes,
    mask_url,
    reset_connections,
    translate_errors,
)
from prefect_lite.storage.connection import redis_url as resolve_url


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def _unreachable(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)


def test_clients_talk_to_the_configured_redis(redis_url: str, redis_client: redis.Redis) -> None:
    assert resolve_url() == redis_url
    get_redis().set("greeting", "héllo")
    assert redis_client.get("greeting") == "héllo"
    assert get_redis().get("greeting") == "héllo"
    assert get_redis_bytes().get("greeting") == "héllo".encode()


def test_clients_are_cached_per_process_until_reset() -> None:
    text, raw = get_redis(), get_redis_bytes()
    assert get_redis() is text and get_redis_bytes() is raw and text is not raw

    reset_connections()

    assert get_redis() is not text and get_redis().ping()


def test_a_forked_child_builds_its_own_client() -> None:
    parent = get_redis()
    parent.set("who", "parent")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report, then leave without running any pytest machinery
        try:
            child = get_redis()
            ok = child is not parent and child.get("who") == "parent"
            os.write(write_end, b"ok" if ok else b"shared")
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        answer = reader.read()
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert parent.get("who") == "parent"  # the parent's pool still works


def test_temporary_settings_switch_servers(redis_url: str) -> None:
    get_redis().set("where", "db0")
    other = redis_url.rsplit("/", 1)[0] + "/1"
    with temporary_settings(redis_url=other):
        assert get_redis().get("where") is None
        get_redis().set("where", "db1")
    assert get_redis().get("where") == "db0"


def test_unreachable_redis_is_one_line_naming_the_url(dead_url: str) -> None:
    with temporary_settings(redis_url=dead_url), pytest.raises(StoreUnavailable) as caught:
        get_redis()

    message = str(caught.value)
    assert message.startswith(f"cannot reach Redis at {dead_url}: ")
    assert message.endswith("Check PREFECT_LITE_REDIS_URL (unset it to use the embedded server).")
    assert "\n" not in message


def test_passwords_are_masked_in_errors(dead_url: str) -> None:
    secret_url = dead_url.replace("redis://", "redis://alice:s3cret@")
    with temporary_settings(redis_url=secret_url), pytest.raises(StoreUnavailable) as caught:
        get_redis()

    assert "s3cret" not in str(caught.value)
    assert "alice:***@127.0.0.1" in str(caught.value)


def test_mask_url() -> None:
    assert mask_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("rediss://u:p%40ss@h/2") == "rediss://u:***@h/2"
    assert mask_url("unix:///tmp/r.sock?db=0&password=pw") == "unix:///tmp/r.sock?db=0&password=***"
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"


def test_describe_names_the_server_without_its_password(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url.replace("redis://", "redis://:pw@")) as client:
        assert describe(client) == redis_url
    with redis.Redis.from_url("unix:///tmp/x.sock?db=3") as client:
        assert describe(client) == "unix:///tmp/x.sock?db=3"


def test_translate_errors_as_context_manager_and_decorator(dead_url: str) -> None:
    with _unreachable(dead_url) as client:
        with pytest.raises(StoreUnavailable, match="cannot reach Redis at"):
            check_connection(client)

        with pytest.raises(StoreUnavailable, match=dead_url), translate_errors(dead_url):
            client.get("x")

        @translate_errors()
        def read() -> object:
            return client.get("x")

        with pytest.raises(StoreUnavailable), temporary_settings(redis_url=dead_url):
            read()


def test_translate_errors_lets_other_errors_through() -> None:
    get_redis().set("text", "not a list")
    with pytest.raises(redis.ResponseError), translate_errors():
        get_redis().lpush("text", "x")


def test_bad_url_schemes_are_configuration_errors() -> None:
    with (
        temporary_settings(redis_url="http://user:pw@localhost:6379"),
        pytest.raises(ConfigurationError, match="redis://, rediss:// or unix://") as caught,
    ):
        resolve_url()
    assert "pw" not in str(caught.value)
