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
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "PREFECT_LITE_"
MIN_SIGNING_KEY_LENGTH = 16


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
    result_signing_key: SecretStr | None = Field(
        default=None,
        description="Secret that signs pickled results and cache records (HMAC-SHA256); the "
        "same on every machine that shares them. Unset: a key generated once in HOME.",
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
    max_concurrent_waits: int = Field(
        default=1000,
        ge=1,
        description="Long polls (run changes, inputs, resumes) one server holds at once; "
        "more are answered 429.",
    )
    max_logs_per_run: int = Field(
        default=100_000,
        ge=1,
        description="Log lines kept per flow run; later ones are dropped and counted.",
    )
    store_outage_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a started run retries state writes while Redis is unreachable.",
    )

    # What the processes that execute flow runs (workers, runners) agree to run; see
    # prefect_lite/deployments/policy.py. Lists are comma-separated in the environment.
    worker_allow_custom_steps: bool = Field(
        default=False,
        description="Let pull steps name any importable callable, not only the built-in steps.",
    )
    worker_allowed_steps: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Only these pull steps (e.g. git_clone,set_working_directory); empty: all.",
    )
    worker_allowed_git_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="git_clone only from URLs starting with one of these."
    )
    worker_allowed_code_paths: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Load flow code only from inside these directories (and the git clones).",
    )
    worker_allow_entrypoint_escape: bool = Field(
        default=False,
        description="Let an entrypoint lie outside its deployment's path (.., absolute, symlink).",
    )
    worker_allow_file_urls: bool = Field(
        default=False, description="Let git_clone clone file:// (local) repositories."
    )

    @field_validator(
        "worker_allowed_steps",
        "worker_allowed_git_urls",
        "worker_allowed_code_paths",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("result_signing_key", mode="after")
    @classmethod
    def _check_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None  # set but empty: unset
        if value is not None and len(value.get_secret_value()) < MIN_SIGNING_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_SIGNING_KEY_LENGTH} characters; make one with: python "
                "-c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

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


_SECRET_PARAMS = {"password", "pass", "passwd", "token", "access_token", "api_key", "apikey",
                  "key", "secret", "auth"}  # fmt: skip
_SECRET_NAME_PARTS = ("key", "password", "secret", "token")


def mask_url(url: str) -> str:
    """``url`` with its credentials replaced by ``***``: the password of the user info
    (``redis://:pw@h``, ``https://user:pw@h``), a bare user info of an http(s) URL (often a
    token), and secret-looking query parameters (``?password=``, ``?token=``...)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        userinfo, at, hostport = netloc.rpartition("@")
        if at and parts.password is not None:
            netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
        elif at and parts.scheme in ("http", "https"):
            netloc = f"***@{hostport}"
        query = parts.query
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            hidden = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
            query = urlencode(hidden, safe="*/")
        if netloc == parts.netloc and query == parts.query:
            return url
        masked = f"{parts.scheme}://{netloc}{parts.path}"
        if query:
            masked += f"?{query}"
        if parts.fragment:
            masked += f"#{parts.fragment}"
        return masked
    except ValueError:
        return "<unparseable Redis URL>"


def _shown(name: str, value: Any) -> str:
    """How ``config view`` shows a value: secrets masked, URLs without credentials."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if any(part in name for part in _SECRET_NAME_PARTS):
        return "********" if value else ""  # e.g. several API keys: never printed
    if isinstance(value, tuple):  # list settings, e.g. allowed git URL prefixes
        return ",".join(_shown(name, item) for item in value)
    text = str(value)
    return mask_url(text) if "://" in text else text


def setting_sources() -> list[tuple[str, str, str]]:
    """Rows of (ENV NAME, shown value, source) for ``config view``; secrets masked."""
    settings = get_settings()
    overridden = {k for layer in _overrides for k in layer}
    rows = []
    for name in Settings.model_fields:
        env_name = ENV_PREFIX + name.upper()
        shown = _shown(name, getattr(settings, name))
        if name in overridden:
            source = "override"
        elif env_name in os.environ:
            source = "env"
        else:
            source = "default"
        rows.append((env_name, shown, source))
    return rows
