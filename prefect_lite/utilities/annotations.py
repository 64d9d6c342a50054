"""Annotations that change how the engine treats a task or flow argument.

- ``unmapped(x)``: in ``Task.map``, give ``x`` as-is to every mapped run.
- ``allow_failure(x)``: run the downstream task even if the upstream run behind ``x``
  failed; the function receives the upstream exception in place of the result.
- ``quote(x)`` (alias ``Quote``): pass ``x`` untouched: no future resolution, no lineage
  scan (cheap for large collections).
- ``opaque(x)``: resolve ``x`` if it is a future or state, but do not look inside it.
"""

from __future__ import annotations

from typing import Any, Generic, Self, TypeVar

T = TypeVar("T")


class BaseAnnotation(Generic[T]):
    """A wrapper around one value; ``unwrap()`` returns it, ``rewrap(v)`` wraps another."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def rewrap(self, value: T) -> Self:
        return type(self)(value)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self), id(self.value)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class unmapped(BaseAnnotation[T]):
    """Give the value to every run of a ``Task.map`` instead of iterating over it."""

    __slots__ = ()

    def __getitem__(self, _: object) -> T:
        return self.value


class allow_failure(BaseAnnotation[T]):
    """Let the downstream run start even if this upstream failed (it gets the exception)."""

    __slots__ = ()


class quote(BaseAnnotation[T]):
    """Pass the value through untouched: futures inside are not resolved, nor scanned."""

    __slots__ = ()

    def unquote(self) -> T:
        return self.value


Quote = quote


class opaque(BaseAnnotation[T]):
    """Resolve a future/state to its result, without traversing the result's contents."""

    __slots__ = ()


class NotSet:
    """Marks "argument not given" where ``None`` is a meaningful value."""

    def __repr__(self) -> str:
        return "NotSet"


def unwrap_annotation(value: Any) -> Any:
    """``value`` without its annotation wrapper (if it has one)."""
    return value.value if isinstance(value, BaseAnnotation) else value
