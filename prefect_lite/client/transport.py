"""Client transports: in-process (call the API handlers) or HTTP (issue the request).

Both take an operation name from the API registry and keyword arguments, and return the
handler's result, so every client method is written once.
"""

from __future__ import annotations

from typing import Any, Protocol

from prefect_lite.api.registry import all_operations


class Transport(Protocol):
    def call(self, operation: str, arguments: dict[str, Any]) -> Any: ...

    def close(self) -> None: ...


class LocalTransport:
    """Calls the handler functions in this process (they talk to Redis directly)."""

    is_local = True

    def __init__(self) -> None:
        self._operations = all_operations()

    def call(self, operation: str, arguments: dict[str, Any]) -> Any:
        return self._operations[operation].fn(**arguments)

    def close(self) -> None:
        pass


def default_transport() -> Transport:
    """HTTP when ``PREFECT_LITE_API_URL`` is set, in-process otherwise."""
    from prefect_lite.settings import get_settings

    settings = get_settings()
    if settings.api_url:
        from prefect_lite.client.http import HTTPTransport

        return HTTPTransport(settings.api_url, settings.api_key)
    return LocalTransport()
