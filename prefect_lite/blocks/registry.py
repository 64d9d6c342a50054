"""Block types known to this process, by slug.

Every ``Block`` subclass registers itself when its class is created; the built-ins in
``prefect_lite.blocks.system`` are imported on the first lookup that misses, so
``Block.load("secret/name")`` works without importing them first. A later class with the
same slug replaces the earlier one (a re-run notebook cell, a reloaded module).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect_lite.blocks.core import Block

_TYPES: dict[str, type[Block]] = {}
_BUILTINS = "prefect_lite.blocks.system"


def register(block_class: type[Block]) -> None:
    _TYPES[block_class.get_block_type_slug()] = block_class


def lookup(slug: str) -> type[Block] | None:
    """The class registered for ``slug``, or None if no imported module defines one."""
    if slug not in _TYPES:
        importlib.import_module(_BUILTINS)
    return _TYPES.get(slug)


def registered() -> dict[str, type[Block]]:
    """Every registered block type, built-ins included."""
    importlib.import_module(_BUILTINS)
    return dict(_TYPES)
