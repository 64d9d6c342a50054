"""Named JSON records: flows, deployments, work pools and queues, workers, variables, blocks.

Each kind is a ``NamedRecords`` over ``P:{kind}:{name}`` strings plus a name index, with
create-if-absent done by ``SET NX`` so concurrent creators never both win.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from pydantic import BaseModel

from prefect_lite.storage import keys
from prefect_lite.storage.connection import get_redis, translate_errors

M = TypeVar("M", bound=BaseModel)


class NamedRecords(Generic[M]):
    """Records of one kind, addressed by a unique name."""

    def __init__(self, kind: str, model: type[M]) -> None:
        self.kind = kind
        self.model = model

    def _key(self, name: str) -> str:
        return keys.record(self.kind, name)

    def get(self, name: str) -> M | None:
        with translate_errors():
            raw = get_redis().get(self._key(name))
        return self.model.model_validate_json(raw) if raw else None

    def get_many(self, names: Iterable[str]) -> list[M]:
        names = list(names)
        if not names:
            return []
        with translate_errors():
            rows = get_redis().mget([self._key(n) for n in names])
        return [self.model.model_validate_json(row) for row in rows if row]

    def create(self, name: str, record: M) -> bool:
        """Store ``record`` unless the name is taken; True if it was stored."""
        with translate_errors():
            pipe = get_redis().pipeline(transaction=True)
            pipe.set(self._key(name), record.model_dump_json(), nx=True)
            pipe.zadd(keys.record_index(self.kind), {name: 0})
            stored, _ = pipe.execute()
        return bool(stored)

    def put(self, name: str, record: M) -> None:
        with translate_errors():
            pipe = get_redis().pipeline(transaction=True)
            pipe.set(self._key(name), record.model_dump_json())
            pipe.zadd(keys.record_index(self.kind), {name: 0})
            pipe.execute()

    def delete(self, name: str) -> bool:
        with translate_errors():
            pipe = get_redis().pipeline(transaction=True)
            pipe.delete(self._key(name))
            pipe.zrem(keys.record_index(self.kind), name)
            deleted, _ = pipe.execute()
        return bool(deleted)

    def names(self, prefix: str = "", limit: int | None = None, offset: int = 0) -> list[str]:
        lo = f"[{prefix}" if prefix else "-"
        hi = f"[{prefix}\xff" if prefix else "+"
        index = keys.record_index(self.kind)
        with translate_errors():
            if limit is None:
                names = get_redis().zrangebylex(index, lo, hi)
            else:
                names = get_redis().zrangebylex(index, lo, hi, start=offset, num=limit)
        return [str(n) for n in names]

    def all(self, prefix: str = "", limit: int | None = None, offset: int = 0) -> list[M]:
        return self.get_many(self.names(prefix, limit, offset))

    def set_alias(self, alias: str, name: str) -> None:
        with translate_errors():
            get_redis().set(keys.record_alias(self.kind, alias), name)

    def resolve_alias(self, alias: str) -> str | None:
        with translate_errors():
            value = get_redis().get(keys.record_alias(self.kind, alias))
        return str(value) if value is not None else None

    def delete_alias(self, alias: str) -> None:
        with translate_errors():
            get_redis().delete(keys.record_alias(self.kind, alias))
