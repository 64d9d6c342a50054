"""Pull steps: what a worker runs to get a deployment's code before loading its flow.

A deployment stores its steps as a list of one-key dicts, Prefect style::

    [{"prefect_lite.deployments.steps.git_clone": {"id": "clone",
                                                   "repository": "https://host/repo.git",
                                                   "branch": "main"}},
     {"prefect_lite.deployments.steps.set_working_directory":
          {"directory": "{{ clone.directory }}"}}]

``run_steps`` calls each function with its arguments; a string argument may refer to an
earlier step's output as ``{{ step-id.key }}``. Steps return dicts; their outputs are
merged and returned (``directory`` is where the flow's code now is).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prefect_lite.exceptions import PullStepError
from prefect_lite.settings import get_settings

GIT_TIMEOUT_SECONDS = 300.0
_TEMPLATE = re.compile(r"\{\{\s*([\w.-]+)\.([\w-]+)\s*\}\}")


def clone_cache_dir() -> Path:
    """Where ``git_clone`` keeps its checkouts: ``PREFECT_LITE_HOME/repos``."""
    return get_settings().home / "repos"


def git_clone(
    repository: str,
    branch: str | None = None,
    commit: str | None = None,
    include_submodules: bool = False,
) -> dict[str, str]:
    """Check out ``repository`` (any URL git accepts, ``file://`` too) at ``branch`` or
    ``commit`` into a cache directory; a branch is updated on every call, a commit is fixed.
    Returns ``{"directory": <checkout>}``."""
    if branch and commit:
        raise PullStepError("git_clone takes a branch or a commit, not both")
    name = Path(urlsplit(repository).path.rstrip("/")).name.removesuffix(".git") or "repo"
    digest = hashlib.sha1(f"{repository}|{branch or ''}|{commit or ''}".encode()).hexdigest()
    target = clone_cache_dir() / f"{name}-{digest[:12]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_suffix(".lock")):
        if (target / ".git").exists():
            _update(target, branch, commit)
        else:
            _fresh_clone(repository, target, branch, commit, include_submodules)
    return {"directory": str(target)}


def set_working_directory(directory: str) -> dict[str, str]:
    """Change the process's working directory (the flow is loaded relative to it)."""
    try:
        os.chdir(directory)
    except OSError as exc:
        raise PullStepError(f"cannot change to directory {directory!r}: {exc.strerror}") from None
    return {"directory": str(Path(directory).resolve())}


def run_steps(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Run pull steps in order; the merged outputs."""
    outputs: dict[str, Any] = {}
    by_id: dict[str, dict[str, Any]] = {}
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or len(step) != 1:
            raise PullStepError(f"pull step {number} must be a mapping with one function name")
        [(path, raw_args)] = step.items()
        args = dict(raw_args or {})
        step_id = args.pop("id", None)
        result = _resolve(path)(**{k: _render(v, by_id) for k, v in args.items()}) or {}
        if not isinstance(result, dict):
            raise PullStepError(f"pull step {path} returned {type(result).__name__}, not a dict")
        outputs.update(result)
        if step_id:
            by_id[str(step_id)] = result
    return outputs


def _resolve(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise PullStepError(f"unknown pull step {path!r}") from None


def _render(value: Any, by_id: dict[str, dict[str, Any]]) -> Any:
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        step_id, key = match.groups()
        if step_id not in by_id or key not in by_id[step_id]:
            raise PullStepError(f"{match.group(0)} refers to no earlier step output")
        return str(by_id[step_id][key])

    return _TEMPLATE.sub(lookup, value)


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
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
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
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise PullStepError(f"git {args[0]} failed: {reason}")
    return done.stdout.strip()


def _fresh_clone(
    repository: str, target: Path, branch: str | None, commit: str | None, submodules: bool
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
    _git(*args, repository, str(partial))
    if commit:
        _git("checkout", "--quiet", commit, cwd=partial)
    partial.rename(target)


def _update(target: Path, branch: str | None, commit: str | None) -> None:
    if commit:
        return  # a commit never changes
    ref = branch or _git("rev-parse", "--abbrev-ref", "HEAD", cwd=target)
    _git("fetch", "--quiet", "--depth", "1", "origin", ref, cwd=target)
    _git("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=target)
