"""Files and directories only their owner can read: the embedded Redis's data and address.

The embedded Redis keeps Secret block values in its append-only file, and its url file
may carry a password, so nothing it writes may be readable by other local users:

- ``make_private(directory)`` forces the directory to 0700 and everything in it to 0600
  (subdirectories 0700), including files an older version or another umask created;
- ``write_private(path, text)`` replaces a file atomically, created 0600;
- ``runtime_dir(home)`` is a short directory for the unix socket when the one under a
  long ``PREFECT_LITE_HOME`` would not fit in a socket address: under
  ``$XDG_RUNTIME_DIR``, else the temp directory, named per user and per home, 0700 and
  owned by this user (a directory someone else made there first is refused, not used).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

MAX_SOCKET_PATH_BYTES = 100
SOCKET_NAME = "redis.sock"


def make_private(directory: Path) -> None:
    """Mode 0700 for ``directory`` and its subdirectories, 0600 for its files."""
    os.chmod(directory, 0o700)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
        for name in files:
            path = os.path.join(root, name)
            with contextlib.suppress(FileNotFoundError, NotImplementedError):
                if not stat.S_ISSOCK(os.lstat(path).st_mode):  # the socket has its own perm
                    os.chmod(path, 0o600, follow_symlinks=False)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text`` in a new 0600 file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def fits(socket_path: Path) -> bool:
    return len(os.fsencode(str(socket_path))) <= MAX_SOCKET_PATH_BYTES


def runtime_dir(home: Path) -> Path:
    """The short per-user, per-home directory for the socket (not created here)."""
    digest = hashlib.sha256(os.fsencode(str(home))).hexdigest()[:16]
    name = f"prefect-lite-{os.geteuid()}-{digest}"
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg) and _owned_private_dir(Path(xdg)):
        candidate = Path(xdg) / name
        if fits(candidate / SOCKET_NAME):
            return candidate
    return Path(tempfile.gettempdir()) / name


def ensure_private_dir(path: Path) -> bool:
    """Create ``path`` 0700 (or take it over if it is ours); False if it is unusable: not
    a directory, a symlink, or someone else's."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    return _owned_private_dir(path, fix=True)


def _owned_private_dir(path: Path, fix: bool = False) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return False
    if info.st_mode & 0o077:
        if not fix:
            return False
        os.chmod(path, 0o700)
    return True
