"""Blocks: typed, named configuration and secrets (``prefect_lite.blocks.core.Block``).

Built-in types live in ``prefect_lite.blocks.system``.
"""

from prefect_lite.blocks.core import Block

__all__ = ["Block"]
