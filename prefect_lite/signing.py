"""Signing of pickled payloads: nothing is unpickled unless a key holder wrote it.

Unpickling runs code, and pickled results and cache records come back from places other
parties can write to (Redis, ``POST /api/results/``, ``POST /api/cache_records/``, a shared
result directory). So every pickle is stored sealed: an HMAC-SHA256 over the serializer
name and the payload, under the result-signing key, travels in front of it, and a reader
checks it before the payload is decoded further. A blob without a valid seal raises
``ResultSignatureError`` and is never unpickled.

The key is ``PREFECT_LITE_RESULT_SIGNING_KEY`` (the same secret on every machine that
shares results), or else one generated once in ``PREFECT_LITE_HOME/result-signing.key``
(0600, created atomically under a lock), which serves every process using that home. It
is never kept in the store: the store is what the seal protects against.

Sealed format (ASCII, so it fits ``RedisStorage`` and cache records as text)::

    pls1.<key id: 8 hex>.<HMAC-SHA256: 64 hex>.<base64 payload>

The key id (an HMAC of a constant, which says nothing about the key) only lets the
error tell "signed with another key" from "tampered with".
"""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_lite.exceptions import ConfigurationError, ResultSignatureError
from prefect_lite.settings import MIN_SIGNING_KEY_LENGTH, Settings, get_settings

KEY_SETTING = "PREFECT_LITE_RESULT_SIGNING_KEY"
KEY_FILE = "result-signing.key"
MAGIC = b"pls1."
_ID_LEN = 8
_SIG_LEN = 64
_HEADER_LEN = len(MAGIC) + _ID_LEN + 1 + _SIG_LEN + 1
_ALIGN = (
    f"Set {KEY_SETTING} to the same secret on every machine that writes or reads pickled "
    "results and cache records (or use result_serializer='json', which needs no key)."
)


@dataclass(frozen=True)
class SigningKey:
    """A result-signing key, ready to use."""

    secret: bytes = field(repr=False)
    source: str  # where it came from, for error messages
    key_id: bytes = field(init=False)
    _started: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        key_id = hmac.new(self.secret, b"prefect_lite key id", hashlib.sha256).hexdigest()
        object.__setattr__(self, "key_id", key_id[:_ID_LEN].encode())

    def mac(self, kind: str, payload: bytes | memoryview) -> bytes:
        """HMAC-SHA256 (hex) of ``kind`` and ``payload``: a copy of an HMAC already fed
        the key and the kind, which saves a third of the cost for small payloads."""
        started = self._started.get(kind)
        if started is None:
            prefix = b"prefect_lite/v1\0" + kind.encode() + b"\0"
            started = self._started.setdefault(kind, hmac.new(self.secret, prefix, "sha256"))
        signer = started.copy()
        signer.update(payload)
        return signer.hexdigest().encode()


_lock = threading.Lock()
_keys: dict[tuple[str | None, Path], SigningKey] = {}
_last: tuple[Settings, SigningKey] | None = None  # the settings object last asked about


def signing_key() -> SigningKey:
    """This process's key: the setting, else the one generated in the home directory."""
    global _last
    settings = get_settings()
    last = _last
    if last is not None and last[0] is settings:
        return last[1]
    found = _key_for(settings)
    _last = (settings, found)
    return found


def _key_for(settings: Settings) -> SigningKey:
    configured = settings.result_signing_key
    secret = configured.get_secret_value() if configured is not None else None
    cache_key = (secret, settings.home)
    found = _keys.get(cache_key)
    if found is not None:
        return found
    with _lock:
        found = _keys.get(cache_key)
        if found is None:
            if secret is not None:
                found = SigningKey(secret.encode(), KEY_SETTING)
            else:
                path = settings.home / KEY_FILE
                source = f"the key generated in {path} ({KEY_SETTING} is unset)"
                found = SigningKey(home_key(path), source)
            _keys[cache_key] = found
    return found


def seal(kind: str, payload: bytes) -> bytes:
    """``payload`` sealed for storage as text: header, then base64."""
    key = signing_key()
    header = MAGIC + key.key_id + b"." + key.mac(kind, payload) + b"."
    return header + binascii.b2a_base64(payload, newline=False)


def unseal(kind: str, blob: bytes) -> bytes:
    """The payload of a sealed ``blob``, after checking its seal.

    ``ResultSignatureError``, and nothing unpickled, if it has none or a wrong one (the
    base64 is decoded before the check, which runs no code)."""
    if not blob.startswith(MAGIC) or len(blob) < _HEADER_LEN or blob[_HEADER_LEN - 1] != 0x2E:
        raise ResultSignatureError(
            f"the {kind} data is not signed, so it was not unpickled (only data written with "
            "the result-signing key is loaded; this was written by an older version or by "
            f"someone without the key). {_ALIGN}"
        )
    key = signing_key()
    key_id = blob[len(MAGIC) : len(MAGIC) + _ID_LEN]
    if key_id != key.key_id:
        raise ResultSignatureError(
            f"the {kind} data was signed with another result-signing key (key id "
            f"{key_id.decode(errors='replace')!r}; this process uses key id "
            f"{key.key_id.decode()!r}, from {key.source}), so it was not unpickled. {_ALIGN}"
        )
    try:
        payload = binascii.a2b_base64(memoryview(blob)[_HEADER_LEN:])  # no copy first
    except (binascii.Error, ValueError):
        payload = None
    signature = blob[len(MAGIC) + _ID_LEN + 1 : _HEADER_LEN - 1]
    if payload is None or not hmac.compare_digest(signature, key.mac(kind, payload)):
        raise ResultSignatureError(
            f"the {kind} data fails its signature check (altered or corrupted), so it was "
            "not unpickled."
        )
    return payload


def home_key(path: Path) -> bytes:
    """The key stored at ``path``, generated there first if there is none."""
    with contextlib.suppress(FileNotFoundError):
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            return _read_key(path)  # another process made it while we waited
        secret = secrets.token_urlsafe(32).encode()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, secret + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return secret
    finally:
        os.close(lock_fd)


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid():
            raise ConfigurationError(
                f"the result-signing key file {path} belongs to another user; remove it or "
                f"set {KEY_SETTING}."
            )
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o600)  # a key others can read lets them forge pickles
        secret = os.read(fd, 4096).strip()
    finally:
        os.close(fd)
    if len(secret) < MIN_SIGNING_KEY_LENGTH:
        raise ConfigurationError(
            f"the result-signing key file {path} is damaged (too short); remove it to make "
            f"a new one, or set {KEY_SETTING}."
        )
    return secret
