"""Reading a persisted result from its reference, in any process that has a client.

A run's stored state points at its result with a ``ResultRef`` (storage, key,
serializer). ``load_result_ref`` reads it: ``"local"`` refs from files under
``PREFECT_LITE_HOME/storage`` (``"local:/path"``: under that directory), ``"redis"`` refs
through the client; then the ``pickle`` or ``json`` serializer. Importing the client
installs it as ``states.result_loader`` (unless one is installed already), so
``client.read_flow_run(id).state.result()`` works without the SDK's results module, which
installs a richer loader (values kept in memory, custom serializers) when imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect_lite import states
from prefect_lite.exceptions import MissingResult, ObjectNotFound, ResultSignatureError
from prefect_lite.serializers import get_serializer
from prefect_lite.settings import get_settings

LOCAL = "local"
REDIS = "redis"


def local_directory(spec: str) -> Path | None:
    """The directory of a local storage spec, or None if ``spec`` is not local."""
    if spec == LOCAL:
        return get_settings().home / "storage"
    if spec.startswith(LOCAL + ":"):
        return Path(spec.removeprefix(LOCAL + ":"))
    return None


def read_blob(spec: str, key: str) -> bytes:
    """The serialized result stored under ``key`` in storage ``spec``; ``MissingResult``
    if it is not there."""
    directory = local_directory(spec)
    if directory is not None:
        if ".." in key.split("/"):
            raise MissingResult(f"invalid result key {key!r}")
        path = directory.joinpath(*key.split("/"))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise MissingResult(
                f"the result file {str(path)!r} does not exist (results in local storage "
                "are readable only where they were written, or with a shared home)"
            ) from None
    if spec == REDIS:
        from prefect_lite.client.orchestration import get_client

        try:
            with get_client(sync_client=True) as client:
                return str(client.read_result(key)).encode()
        except ObjectNotFound:
            raise MissingResult(f"no result is stored in Redis under {key!r}") from None
    raise MissingResult(f"unknown result storage {spec!r} in a result reference")


def load_result_ref(ref: states.ResultRef) -> Any:
    """The value ``ref`` points to."""
    try:
        serializer = get_serializer(ref.serializer)
    except ValueError:
        raise MissingResult(
            f"result {ref.key!r} was written with serializer {ref.serializer!r}, unknown here"
        ) from None
    try:
        return serializer.loads(read_blob(ref.storage, ref.key))
    except ResultSignatureError as exc:
        raise ResultSignatureError(f"result {ref.key!r} ({ref.storage}): {exc}") from None


def install_default_loader() -> None:
    if states.result_loader is None:
        states.result_loader = load_result_ref
