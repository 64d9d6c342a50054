"""The ``git_clone`` pull step: a cached checkout of a repository at a branch or commit.

Nothing the deployment says reaches git as an option: the URL follows ``--``, a URL,
branch or commit starting with ``-`` is refused, a commit must be a hexadecimal id, and
git's transport helpers (``ext::``, ``fd::``) are refused. ``GIT_ALLOW_PROTOCOL`` limits
the protocols git itself may use (submodules included): the running policy's list while
pull steps run, otherwise every plain protocol. Credentials in the URL (or given as
``access_token``) are used for the clone and fetches but not left in the checkout's
``.git/config``, and error messages show the URL masked.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from prefect_lite.exceptions import PullStepError
from prefect_lite.redaction import mask_urls
from prefect_lite.settings import get_settings

GIT_TIMEOUT_SECONDS = 300.0
ANY_PLAIN_PROTOCOL = "file:git:http:https:ssh"
# GIT_ALLOW_PROTOCOL of the pull steps running now (set by run_steps from its policy).
protocols: contextvars.ContextVar[str] = contextvars.ContextVar(
    "git_protocols", default=ANY_PLAIN_PROTOCOL
)
_COMMIT = re.compile(r"^[0-9a-fA-F]{4,64}$")
_BAD_REF = re.compile(r"^-|[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{")


def clone_cache_dir() -> Path:
    """Where ``git_clone`` keeps its checkouts: ``PREFECT_LITE_HOME/repos``."""
    return get_settings().home / "repos"


def git_clone(
    repository: str,
    branch: str | None = None,
    commit: str | None = None,
    include_submodules: bool = False,
    access_token: str | None = None,
    commit_sha: str | None = None,
) -> dict[str, str]:
    """Check out ``repository`` at ``branch`` or ``commit`` (``commit_sha``, Prefect's
    name) into a cache directory; a branch is updated on every call, a commit is fixed.
    ``access_token`` (``TOKEN`` or ``USER:TOKEN``) authenticates an https URL. Returns
    ``{"directory": <checkout>}``."""
    commit = commit or commit_sha
    _check_arguments(repository, branch, commit)
    url = _with_token(repository, access_token) if access_token else repository
    clean = _without_credentials(url)
    name = Path(urlsplit(clean).path.rstrip("/")).name.removesuffix(".git") or "repo"
    digest = hashlib.sha1(f"{clean}|{branch or ''}|{commit or ''}".encode()).hexdigest()
    target = clone_cache_dir() / f"{name}-{digest[:12]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_suffix(".lock")):
        if (target / ".git").exists():
            _update(url, target, branch, commit)
        else:
            _fresh_clone(url, target, branch, commit, include_submodules)
    return {"directory": str(target)}


def _check_arguments(repository: object, branch: object, commit: object) -> None:
    if not isinstance(repository, str) or not repository.strip():
        raise PullStepError("git_clone needs a repository URL")
    if repository.startswith("-") or "::" in repository.split("/", 1)[0]:
        raise PullStepError(f"git repository {mask_urls(repository)!r} is not a URL git may clone")
    if branch and commit:
        raise PullStepError("git_clone takes a branch or a commit, not both")
    if branch is not None and (not isinstance(branch, str) or _BAD_REF.search(branch)):
        raise PullStepError(f"git_clone: {branch!r} is not a branch name")
    if commit is not None and (not isinstance(commit, str) or not _COMMIT.match(commit)):
        raise PullStepError(f"git_clone: commit {commit!r} is not a hexadecimal commit id")


def _with_token(repository: str, token: str) -> str:
    parts = urlsplit(repository)
    if parts.scheme != "https":
        raise PullStepError("git_clone: access_token needs an https:// repository URL")
    user, _, secret = token.rpartition(":")
    userinfo = (
        f"{quote(user, safe='')}:{quote(secret, safe='')}" if user else quote(secret, safe="")
    )
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def _without_credentials(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive file lock, so concurrent workers do not clone into one place at once."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": protocols.get()}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise PullStepError("git is not installed (needed by the git_clone pull step)") from None
    except subprocess.TimeoutExpired:
        raise PullStepError(f"git {args[0]} took longer than {GIT_TIMEOUT_SECONDS:g} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = mask_urls(lines[-1]) if lines else f"exit status {done.returncode}"
        raise PullStepError(f"git {args[0]} failed: {reason}")
    return done.stdout.strip()


def _fresh_clone(
    url: str, target: Path, branch: str | None, commit: str | None, submodules: bool
) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    args = ["clone", "--quiet"]
    if branch:
        args += ["--branch", branch]
    if not commit:
        args += ["--depth", "1"]
    if submodules:
        args.append("--recurse-submodules")
    _git(*args, "--", url, str(partial))
    clean = _without_credentials(url)
    if clean != url:  # the token stays out of .git/config; fetches name the URL
        _git("remote", "set-url", "origin", clean, cwd=partial)
    if commit:
        _git("checkout", "--quiet", commit, "--", cwd=partial)
    partial.rename(target)


def _update(url: str, target: Path, branch: str | None, commit: str | None) -> None:
    if commit:
        return  # a commit never changes
    ref = branch or _git("rev-parse", "--abbrev-ref", "HEAD", cwd=target)
    _git("fetch", "--quiet", "--depth", "1", "--", url, ref, cwd=target)
    _git("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=target)
