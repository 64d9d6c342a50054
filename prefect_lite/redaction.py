"""Credentials inside stored values: find them, mask them for reading.

A deployment's pull steps may carry credentials inline: a token in a git URL
(``https://user:TOKEN@host/repo.git``) or in an argument named like one (``access_token``,
``password``). They are stored as given (a worker needs them), but every reader that is not
a worker sees them masked, and storing them draws a warning: a Secret block referenced as
``{{ prefect.blocks.secret.NAME }}`` keeps them out of the deployment altogether.
Templates (``{{ ... }}``) are never secrets and are shown as they are.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "********"
# Argument names whose values are credentials (any case, any prefix/suffix around them).
_SECRET_KEY = re.compile(r"token|password|passwd|secret|credential|api_?key|private_?key", re.I)
# scheme://userinfo@ inside any text (a URL may sit inside a longer string or a script).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_TEMPLATE = re.compile(r"^\s*\{\{.*\}\}\s*$", re.S)
# Users that name an account, not a secret, over ssh.
_SSH_SCHEMES = ("ssh://", "git+ssh://", "ssh+git://")


def mask_urls(text: str) -> str:
    """``text`` with the password (or, over http(s), a lone user that is a token) of every
    URL replaced by ``MASK``: ``https://u:p@h`` -> ``https://u:********@h``."""

    def masked(match: re.Match[str]) -> str:
        scheme, userinfo = match.group("scheme"), match.group("userinfo")
        if "{{" in userinfo:
            return match.group(0)
        user, has_password, _password = userinfo.partition(":")
        if has_password:
            return f"{scheme}{user}:{MASK}@"
        if scheme.lower() in _SSH_SCHEMES:
            return match.group(0)
        return f"{scheme}{MASK}@"

    return _URL_USERINFO.sub(masked, text)


def mask_value(value: Any, key: str = "") -> Any:
    """A copy of ``value`` (JSON-like) with credentials masked: URLs' passwords anywhere,
    and whole values under keys named like a credential (unless they are templates)."""
    if isinstance(value, dict):
        return {k: mask_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, key) for v in value]
    if isinstance(value, str):
        if key and _SECRET_KEY.search(key) and value and not _TEMPLATE.match(value):
            return MASK
        return mask_urls(value)
    return value


def inline_credentials(value: Any, where: str = "") -> list[str]:
    """Where ``value`` holds credentials inline (``mask_value`` would change them): paths
    like ``pull_steps[0].git_clone.repository``, for a warning that names no secret."""
    if isinstance(value, dict):
        found: list[str] = []
        for k, v in value.items():
            name = str(k).rpartition(".")[2] if "." in str(k) else str(k)
            path = f"{where}.{name}" if where else name
            if isinstance(v, str) and mask_value(v, str(k)) != v:
                found.append(path)
            else:
                found += inline_credentials(v, path)
        return found
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in inline_credentials(v, f"{where}[{i}]")]
    if isinstance(value, str) and mask_urls(value) != value:
        return [where]
    return []
