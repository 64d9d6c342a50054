"""Built-in block types: ``Secret``, ``JSON``, ``String``, ``DateTime``.

``Secret`` keeps its value out of every printed form: ``repr``, ``str``, f-strings, log
messages and ``model_dump``/``model_dump_json`` all show ``**********``; ``get()`` returns the
real value. Unlike Prefect's, ``get()`` returns a string secret as the string it is (Prefect
tries to parse it as JSON); store a dict or list to get one back.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, JsonValue, SecretStr, field_validator
from pydantic import Secret as SecretValue

from prefect_lite.blocks.core import Block
from prefect_lite.schemas import JSON_TYPES_HINT, json_value_problem

__all__ = ["DateTime", "JSON", "Secret", "String"]


class Secret(Block):
    """A secret value (a string, or any JSON such as a dict of credentials)."""

    # Validation errors must not echo the value they rejected.
    model_config = ConfigDict(hide_input_in_errors=True)

    value: SecretStr | SecretValue[JsonValue] = Field(
        description="A value that should be kept secret.",
        json_schema_extra={"writeOnly": True, "format": "password"},
    )

    if TYPE_CHECKING:  # accepts the plain value too; the validator wraps it

        def __init__(self, *, value: Any) -> None: ...

    @field_validator("value", mode="before")
    @classmethod
    def _wrap(cls, value: Any) -> Any:
        if isinstance(value, SecretStr | SecretValue):
            return value
        if isinstance(value, str):
            return SecretStr(value)
        problem = json_value_problem(value)
        if problem is not None:
            raise ValueError(f"the secret {problem}; use {JSON_TYPES_HINT}")
        return SecretValue[JsonValue](value)

    def get(self) -> Any:
        """The secret's real value."""
        return self.value.get_secret_value()


class JSON(Block):
    """Any JSON value."""

    value: JsonValue = Field(description="A JSON-compatible value.")


class String(Block):
    """A string value."""

    value: str = Field(description="A string value.")


class DateTime(Block):
    """A date and time."""

    value: datetime = Field(description="An ISO 8601-compatible datetime value.")
