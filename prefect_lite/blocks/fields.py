"""Secret fields of a block: which ones they are, and how their values are stored.

pydantic masks ``SecretStr``/``SecretBytes``/``Secret[...]`` when a model is printed or
dumped, which is what users should see. A saved document must hold the real value so
``load()`` gives it back, so ``revealed`` unwraps secrets in a ``model_dump`` before it is
stored; ``secret_field_paths`` lists the dotted paths that readers mask.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

SECRET_TYPES: tuple[type, ...] = (SecretStr, SecretBytes, Secret)


def _members(annotation: Any) -> list[Any]:
    """``annotation`` and every type nested in it (Optional, unions, generics, Annotated)."""
    found = [annotation]
    origin = typing.get_origin(annotation)
    if origin is not None:
        found.append(origin)
    for arg in typing.get_args(annotation):
        if not isinstance(arg, str | int | float | bool | types.NoneType):
            found.extend(_members(arg))
    return found


def _is_secret(member: Any) -> bool:
    return isinstance(member, type) and issubclass(member, SECRET_TYPES)


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _has_secret(model: type[BaseModel], seen: frozenset[type] = frozenset()) -> bool:
    if model in seen:
        return False
    for field in model.model_fields.values():
        if any(_is_secret(m) for m in _members(field.annotation)):
            return True
        if any(_has_secret(m, seen | {model}) for m in _models(field.annotation)):
            return True
    return False


def _direct_model(annotation: Any) -> type[BaseModel] | None:
    """The model when the annotation is ``Model`` or ``Model | None``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not types.NoneType]
        if len(args) == 1:
            return _direct_model(args[0])
    return None


def secret_field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of fields holding secrets. A nested model is followed into when the
    field is that model (optionally None); a secret inside any other container (a list of
    models, a dict of secrets) makes the whole field secret, so nothing slips through."""
    paths: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        annotation = field.annotation
        members = _members(annotation)
        if any(_is_secret(m) for m in members):
            paths.append(prefix + key)
            continue
        nested = [m for m in _models(annotation) if _has_secret(m, frozenset({model}))]
        if not nested:
            continue
        direct = _direct_model(annotation)
        if direct is not None and direct is not model:
            paths.extend(secret_field_paths(direct, f"{prefix}{key}."))
        else:
            paths.append(prefix + key)
    return paths


def revealed(value: Any) -> Any:
    """``value`` (a python-mode ``model_dump``) with every secret replaced by its value."""
    if isinstance(value, SecretStr | SecretBytes | Secret):
        return revealed(value.get_secret_value())
    if isinstance(value, dict):
        return {k: revealed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [revealed(v) for v in value]
    return value
