"""Variables: named, mutable JSON values shared by flows, tasks, deployments and processes.

``Variable.get("name", default)`` / ``Variable.set("name", value, tags, overwrite=False)``
as in Prefect, plus ``unset`` and the async ``aget``/``aset``/``aunset``. The rules are
Prefect's: names of lowercase letters, digits, underscores and dashes (at most 255
characters); values that are plain JSON (str, int, float, bool, None, lists and dicts of
those) of at most 5,000 characters as compact JSON. Breaking a rule raises
``prefect_lite.exceptions.ValidationError`` (``PayloadTooLarge`` for size) at once, before
anything is stored; ``get`` and ``unset`` check the name too, so a misspelt name fails
loudly instead of quietly returning the default.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from prefect_lite.client import get_client
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.schemas import (
    MAX_VARIABLE_NAME_LENGTH,
    check_tags,
    check_variable_name,
    check_variable_value,
)

__all__ = ["Variable"]


class Variable(BaseModel):
    """A named JSON value; use the classmethods, instances are what ``set`` returns."""

    name: str = Field(max_length=MAX_VARIABLE_NAME_LENGTH)
    value: Any = None
    tags: list[str] | None = None

    @classmethod
    def get(cls, name: str, default: Any = None) -> Any:
        """The variable's value, or ``default`` if there is no variable of that name."""
        check_variable_name(name)
        with get_client(sync_client=True) as client:
            try:
                return client.read_variable_by_name(name).value
            except ObjectNotFound:
                return default

    @classmethod
    async def aget(cls, name: str, default: Any = None) -> Any:
        check_variable_name(name)
        async with get_client() as client:
            try:
                variable = await client.read_variable_by_name(name)
            except ObjectNotFound:
                return default
        return variable.value

    @classmethod
    def set(
        cls,
        name: str,
        value: Any,
        tags: list[str] | None = None,
        overwrite: bool = False,
    ) -> Variable:
        """Create the variable; an existing name needs ``overwrite=True`` (else
        ``ObjectAlreadyExists``). Overwriting replaces both value and tags."""
        tags = _checked(name, value, tags)
        with get_client(sync_client=True) as client:
            stored = client.create_variable(name, value, tags=tags, overwrite=overwrite)
        return cls(name=stored.name, value=stored.value, tags=stored.tags)

    @classmethod
    async def aset(
        cls,
        name: str,
        value: Any,
        tags: list[str] | None = None,
        overwrite: bool = False,
    ) -> Variable:
        tags = _checked(name, value, tags)
        async with get_client() as client:
            stored = await client.create_variable(name, value, tags=tags, overwrite=overwrite)
        return cls(name=stored.name, value=stored.value, tags=stored.tags)

    @classmethod
    def unset(cls, name: str) -> bool:
        """Delete the variable: True if it existed, False if there was none."""
        check_variable_name(name)
        with get_client(sync_client=True) as client:
            try:
                client.delete_variable_by_name(name)
            except ObjectNotFound:
                return False
        return True

    @classmethod
    async def aunset(cls, name: str) -> bool:
        check_variable_name(name)
        async with get_client() as client:
            try:
                await client.delete_variable_by_name(name)
            except ObjectNotFound:
                return False
        return True


def _checked(name: str, value: Any, tags: list[str] | None) -> list[str]:
    """Check here too: over HTTP a non-JSON value would fail as an encoding error."""
    check_variable_name(name)
    check_variable_value(name, value)
    return check_tags(tags)
