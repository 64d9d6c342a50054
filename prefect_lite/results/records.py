"""Writing a value to a result storage, and reading it back from a ``ResultRef``.

``write_result`` serializes a value, stores it and returns a ``PersistedResult``: a
``ResultRef`` (what the run's stored state records) that also keeps the value in this
process, so ``state.result()`` here costs nothing and the stored state still points to
the blob. ``load_result`` is what ``State.result()`` calls for a reference: the value in
memory if there is one, else the blob from its storage.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import PrivateAttr

from prefect_lite.client.results import read_blob
from prefect_lite.exceptions import ConfigurationError, MissingResult, ResultSignatureError
from prefect_lite.results.storage import ResultStorage
from prefect_lite.serializers import JSONSerializer, PickleSerializer, Serializer
from prefect_lite.states import ResultRef

_SERIALIZERS: dict[str, Serializer] = {"pickle": PickleSerializer(), "json": JSONSerializer()}


class PersistedResult(ResultRef):
    """A reference to a stored result, holding the value too while in this process."""

    _value: Any = PrivateAttr(default=None)
    _has_value: bool = PrivateAttr(default=False)
    _blob: bytes | None = PrivateAttr(default=None)  # as written, while small

    @classmethod
    def holding(cls, ref: ResultRef, value: Any) -> PersistedResult:
        made = cls(storage=ref.storage, key=ref.key, serializer=ref.serializer)
        made.keep(value)
        return made

    @property
    def has_value(self) -> bool:
        return self._has_value

    def keep(self, value: Any) -> None:
        self._value, self._has_value = value, True

    def inline_text(self) -> str | None:
        """The serialized value as text, if it was small enough to keep (else None)."""
        if self._blob is None:
            return None
        try:
            return self._blob.decode()
        except UnicodeDecodeError:
            return None

    def reference(self) -> ResultRef:
        """The plain reference (what is stored)."""
        return ResultRef(storage=self.storage, key=self.key, serializer=self.serializer)


def resolve_serializer(value: Any) -> Serializer:
    """``"pickle"`` (default, cloudpickle), ``"json"`` or a serializer object with a
    ``type`` name and ``dumps``/``loads`` (registered so this process can read it back)."""
    if value is None or value in ("pickle", "cloudpickle"):
        return _SERIALIZERS["pickle"]
    if isinstance(value, str):
        if value in _SERIALIZERS:
            return _SERIALIZERS[value]
        raise ConfigurationError(f"unknown result serializer {value!r}: use 'pickle' or 'json'")
    kind = getattr(value, "type", None)
    if not isinstance(kind, str) or not callable(getattr(value, "dumps", None)):
        raise ConfigurationError(
            f"result_serializer={value!r} is not a serializer: use 'pickle', 'json' or an "
            "object with a 'type' name and dumps/loads methods"
        )
    _SERIALIZERS.setdefault(kind, value)
    return value


INLINE_LIMIT = 2048  # serialized results up to this size are repeated in cache records


def new_result_key() -> str:
    return uuid.uuid4().hex


def write_result(
    value: Any,
    storage: ResultStorage,
    serializer: Serializer,
    key: str | None = None,
    keep_in_memory: bool = True,
) -> PersistedResult:
    """Serialize and store ``value``; its reference (holding the value if asked)."""
    blob = serializer.dumps(value)
    key = key or new_result_key()
    storage.write(key, blob)
    ref = PersistedResult(storage=storage.spec, key=key, serializer=serializer.type)
    if len(blob) <= INLINE_LIMIT:
        ref._blob = blob
    if keep_in_memory:
        ref.keep(value)
    return ref


def read_result(ref: ResultRef, blob: bytes | None = None) -> Any:
    """The value a reference points to, read from its storage unless ``blob`` is given
    (``MissingResult`` if the blob or its serializer is not there)."""
    serializer = _SERIALIZERS.get(ref.serializer)
    if serializer is None:
        raise MissingResult(
            f"result {ref.key!r} was written with serializer {ref.serializer!r}, which this "
            "process does not know"
        )
    try:
        return serializer.loads(read_blob(ref.storage, ref.key) if blob is None else blob)
    except ResultSignatureError as exc:
        raise ResultSignatureError(f"result {ref.key!r} ({ref.storage}): {exc}") from None


def load_result(ref: ResultRef) -> Any:
    """``State.result()``'s loader: the value in memory, else read from storage."""
    if isinstance(ref, PersistedResult) and ref.has_value:
        return ref._value
    return read_result(ref)
