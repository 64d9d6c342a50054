"""Length limits on the names and free text a client gives: a 422 naming the field.

Every stored name is copied into records, indexes and aliases, so an unbounded one costs
memory many times over (40 runs with 4 MB names once grew Redis by 834 MB). Limits follow
Prefect's where it has one (variable names: 255 characters); tags are bounded in
``schemas.check_tags`` (at most ``MAX_TAGS``, each at most ``MAX_TAG_LENGTH``).
"""

from __future__ import annotations

from prefect_lite.exceptions import ValidationError
from prefect_lite.schemas import MAX_TAG_LENGTH, MAX_TAGS, check_tags

MAX_NAME_LENGTH = 255  # flow, deployment, task run, worker, block document names
MAX_RUN_NAME_LENGTH = 200  # flow run names
MAX_TEXT_LENGTH = 2000  # descriptions
MAX_VERSION_LENGTH = 255
MAX_IDEMPOTENCY_KEY_LENGTH = 500

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_RUN_NAME_LENGTH",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_TEXT_LENGTH",
    "MAX_VERSION_LENGTH",
    "check_length",
    "check_tags",
]


def check_length(value: object, what: str, limit: int = MAX_NAME_LENGTH) -> None:
    """``ValidationError`` naming ``what`` if ``value`` is a string over ``limit`` characters."""
    if isinstance(value, str) and len(value) > limit:
        raise ValidationError(f"{what} is {len(value)} characters long; the limit is {limit}")
