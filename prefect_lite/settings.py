"""The one settings object.

Every tunable lives here, read once from the environment (prefix ``PREFECT_LITE_``)
and handed down. ``temporary_settings(...)`` swaps in overrides for a block of code
(tests, CLI flags); ``setting_sources()`` says where each effective value came from.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PREFECT_LITE_"


class Settings(BaseSettings):
    """Effective configuration of one process."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    home: Path = Field(
        default=Path("~/.prefect_lite"),
        description="Directory for the embedded Redis, local results and state.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://, rediss:// or unix:// URL. Unset: start/reuse the embedded server.",
    )
    redis_prefix: str = Field(default="pl", description="Prefix of every Redis key.")
    api_url: str | None = Field(default=None, description="Talk to a server over HTTP.")
    api_key: SecretStr | None = Field(
        default=None,
        description="Bearer token clients send. On the server: one more key, with the admin role.",
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="Server: keys with roles, 'ROLE:KEY,...' (roles: read, run, worker, admin).",
    )
    server_trusted_hosts: str = Field(
        default="",
        description="Server: Host names accepted besides loopback, comma-separated ('*': any).",
    )
    logging_level: str = Field(default="INFO", description="Level of prefect_lite loggers.")
    lease_seconds: float = Field(
        default=6.0, gt=0, description="A running flow run's lease; workers renew it."
    )
    reaper_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often the reaper looks for expired leases."
    )
    late_after_seconds: float = Field(
        default=15.0, ge=0, description="A scheduled run this far past due is marked Late."
    )
    max_payload_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="Largest parameters/result/input payload."
    )
    connect_timeout_seconds: float = Field(default=3.0, gt=0)
    socket_timeout_seconds: float = Field(
        default=3.0,
        ge=2.5,  # blocking commands block server-side for up to 2 s
        description="Longest wait for one Redis reply: a frozen Redis fails calls this fast.",
    )
    store_outage_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a started run retries state writes while Redis is unreachable.",
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("logging_level", mode="after")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown logging level {value!r}")
        return level


_lock = threading.Lock()
_base: Settings | None = None
_overrides: list[dict[str, Any]] = []
_current: Settings | None = None


def get_settings() -> Settings:
    """The process's settings: environment read once, then any active overrides."""
    global _base, _current
    current = _current
    if current is not None:
        return current
    with _lock:
        if _base is None:
            _base = Settings()
        if _current is None:
            merged: dict[str, Any] = {}
            for layer in _overrides:
                merged.update(layer)
            _current = _base.model_copy(update=_validated(merged)) if merged else _base
        return _current


def _validated(values: dict[str, Any]) -> dict[str, Any]:
    """Run overrides through validation so they get the same coercion as the environment."""
    data = {k: v for k, v in (_base.model_dump() if _base else {}).items()}
    data.update(values)
    checked = Settings.model_validate({**data})
    return {k: getattr(checked, k) for k in values}


def reload_settings() -> Settings:
    """Forget the cached environment read (used after the environment changed)."""
    global _base, _current
    with _lock:
        _base = None
        _current = None
    return get_settings()


@contextlib.contextmanager
def temporary_settings(**overrides: Any) -> Iterator[Settings]:
    """Apply overrides (field names, lower case) for the duration of the block."""
    global _current
    unknown = set(overrides) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    layer = dict(overrides)
    with _lock:
        _overrides.append(layer)
        _current = None
    try:
        yield get_settings()
    finally:
        with _lock:
            _overrides.remove(layer)
            _current = None


def setting_sources() -> list[tuple[str, str, str]]:
    """Rows of (ENV NAME, shown value, source) for ``config view``; secrets masked."""
    settings = get_settings()
    overridden = {k for layer in _overrides for k in layer}
    rows = []
    for name in Settings.model_fields:
        env_name = ENV_PREFIX + name.upper()
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "********" if value.get_secret_value() else ""
        else:
            shown = "" if value is None else str(value)
        if name in overridden:
            source = "override"
        elif env_name in os.environ:
            source = "env"
        else:
            source = "default"
        rows.append((env_name, shown, source))
    return rows
