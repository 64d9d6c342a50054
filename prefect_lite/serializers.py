"""Serializers for stored payloads.

``json`` (orjson, strict: only JSON-native values) and ``pickle`` (cloudpickle, signed with
the result-signing key) for results;
``dumps``/``loads`` for records. Every stored shape goes through one named function.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from prefect_lite import signing
from prefect_lite.exceptions import UnserializableValue


class Serializer(Protocol):
    type: str

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, blob: bytes) -> Any: ...


def _default(obj: Any) -> Any:
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> bytes:
    """JSON bytes of a record or plain value (UUIDs, datetimes and models allowed).

    A value JSON cannot hold is bad input, not a crash: ``UnserializableValue``.
    """
    try:
        return orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        raise UnserializableValue(f"cannot store as JSON: {exc}") from exc


def loads(blob: bytes | str) -> Any:
    return orjson.loads(blob)


class JSONSerializer:
    type = "json"

    def dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def loads(self, blob: bytes) -> Any:
        return orjson.loads(blob)


class PickleSerializer:
    """cloudpickle, so lambdas and locally defined classes survive; sealed with the
    result-signing key (``prefect_lite.signing``), and never unpickled without a valid seal."""

    type = "pickle"

    def dumps(self, obj: Any) -> bytes:
        import cloudpickle

        return signing.seal(self.type, cloudpickle.dumps(obj))

    def loads(self, blob: bytes) -> Any:
        import pickle

        return pickle.loads(signing.unseal(self.type, blob))


def get_serializer(name: str | Serializer) -> Serializer:
    if not isinstance(name, str):
        return name
    if name in ("json",):
        return JSONSerializer()
    if name in ("pickle", "cloudpickle"):
        return PickleSerializer()
    raise ValueError(f"unknown result serializer {name!r}: use 'json' or 'pickle'")
