"""Where persisted results live: ``LocalFileSystem`` (the default) and ``RedisStorage``.

A storage writes and reads serialized blobs by key. Each has a ``spec`` string that a
``ResultRef`` records, so any process can find the blob again from the run's state:

- ``"local"``: ``LocalFileSystem()`` under ``settings.home / "storage"`` of the reading
  process (the same machine, or a shared home);
- ``"local:/abs/path"``: ``LocalFileSystem(basepath)``;
- ``"redis"``: ``RedisStorage()``, through the client, for workers on other machines.
  Blobs are limited to ``settings.max_payload_bytes`` (``PayloadTooLarge`` otherwise).

The option ``result_storage=`` of flows and tasks takes a storage, ``"local"``,
``"redis"`` or a directory path. Reading a blob back from its spec is the client's job
(``prefect_lite.client.results``), so any process with a client can do it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, runtime_checkable

from prefect_lite.client.results import LOCAL, local_directory, read_blob
from prefect_lite.exceptions import ConfigurationError, PayloadTooLarge
from prefect_lite.settings import get_settings


def default_directory() -> Path:
    """Where ``LocalFileSystem()`` keeps results: ``PREFECT_LITE_HOME/storage``."""
    directory = local_directory(LOCAL)
    assert directory is not None
    return directory


@runtime_checkable
class ResultStorage(Protocol):
    """Blob storage for results."""

    @property
    def spec(self) -> str:
        """How a ``ResultRef`` names this storage."""

    def write(self, key: str, blob: bytes) -> None: ...

    def read(self, key: str) -> bytes:
        """The blob; ``MissingResult`` if there is none."""


def _checked_key(key: str) -> PurePosixPath:
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(p in ("", ".", "..") for p in key.split("/")):
        raise ConfigurationError(
            f"invalid result key {key!r}: use a relative path without '.' or '..' parts"
        )
    return path


class LocalFileSystem:
    """Results as files under ``basepath`` (default: ``PREFECT_LITE_HOME/storage``)."""

    def __init__(self, basepath: str | os.PathLike[str] | None = None) -> None:
        self.basepath = None if basepath is None else Path(basepath).expanduser().absolute()

    @property
    def spec(self) -> str:
        return "local" if self.basepath is None else f"local:{self.basepath}"

    def root(self) -> Path:
        return self.basepath or default_directory()

    def write(self, key: str, blob: bytes) -> None:
        """Write atomically (a reader in another process never sees half a file)."""
        target = self.root().joinpath(*_checked_key(key).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(blob)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, key: str) -> bytes:
        _checked_key(key)
        return read_blob(self.spec, key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalFileSystem) and other.basepath == self.basepath

    def __hash__(self) -> int:
        return hash(("local", self.basepath))

    def __repr__(self) -> str:
        return f"LocalFileSystem(basepath={str(self.root())!r})"


class RedisStorage:
    """Results in the store (Redis), reached through the client like everything else."""

    spec = "redis"

    def write(self, key: str, blob: bytes) -> None:
        limit = get_settings().max_payload_bytes
        if len(blob) > limit:  # checked again by the API; this spares sending it
            raise PayloadTooLarge(
                f"result {key!r} is {len(blob)} bytes serialized; the limit is {limit} bytes "
                "(PREFECT_LITE_MAX_PAYLOAD_BYTES). Persist large results to a LocalFileSystem "
                "storage (the default) instead of RedisStorage, or raise the limit."
            )
        try:
            text = blob.decode()
        except UnicodeDecodeError:
            raise ConfigurationError(
                "RedisStorage stores text: use the 'pickle' or 'json' result serializer"
            ) from None
        _client().write_result(key, text)

    def read(self, key: str) -> bytes:
        return read_blob(self.spec, key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RedisStorage)

    def __hash__(self) -> int:
        return hash("redis")

    def __repr__(self) -> str:
        return "RedisStorage()"


def _client() -> Any:
    from prefect_lite.engine.scope import engine_client

    return engine_client()


def resolve_storage(value: Any) -> ResultStorage:
    """The storage a ``result_storage=`` option names (None: the default local one)."""
    if value is None or value == "local":
        return LocalFileSystem()
    if value == "redis":
        return RedisStorage()
    if isinstance(value, ResultStorage):
        return value
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.startswith("/")):
        return LocalFileSystem(value)
    raise ConfigurationError(
        f"result_storage={value!r} is not a storage: use LocalFileSystem(path), "
        "RedisStorage(), 'local', 'redis' or an absolute directory path"
    )
