"""What a process that executes flow runs (a worker, a runner) agrees to run.

A deployment names its code (``path``, ``entrypoint``) and how to get it (pull steps);
whoever may deploy may write those. The executing process decides what it runs:

- pull steps are the built-in steps (``git_clone``, ``set_working_directory``,
  ``pip_install_requirements``, ``run_shell_script``, under Prefect's names and ours); any
  other dotted callable only with ``allow_custom_steps`` or named in ``allowed_steps``,
  which, when given, is the whole list of steps that may run;
- ``git_clone`` takes ``https``, ``ssh`` and scp-like ``user@host:path`` URLs, ``file``
  only with ``allow_file_urls``, nothing else; ``allowed_git_urls`` narrows to prefixes;
- the entrypoint must resolve (symlinks followed) inside the deployment's path, unless
  ``allow_entrypoint_escape`` or it lies in one of ``allowed_code_paths``, which, when
  given, also bound where the code may be at all (git clones always count as inside).

Every refusal is a ``CodeRefused`` that names what was refused and the opt-in. The checks
run before anything of the run executes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect_lite.exceptions import CodeRefused
from prefect_lite.redaction import mask_urls
from prefect_lite.settings import get_settings

STEPS_MODULE = "prefect_lite.deployments.steps"
BUILTIN_STEPS = (
    "git_clone",
    "set_working_directory",
    "pip_install_requirements",
    "run_shell_script",
)
_STEP_PREFIXES = ("prefect.deployments.steps.", "prefect_lite.deployments.steps.")
# Prefect keeps its steps in submodules too (prefect.deployments.steps.pull.git_clone).
_STEP_SUBMODULES = ("pull.", "utility.")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:(?!//)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_OPT_IN = {
    "custom": "start the worker with --allow-custom-steps (PREFECT_LITE_WORKER_ALLOW_CUSTOM_STEPS)",
    "file": "start the worker with --allow-file-urls (PREFECT_LITE_WORKER_ALLOW_FILE_URLS)",
    "escape": "start the worker with --allow-entrypoint-escape or --allowed-code-path DIR "
    "(PREFECT_LITE_WORKER_ALLOW_ENTRYPOINT_ESCAPE, PREFECT_LITE_WORKER_ALLOWED_CODE_PATHS)",
}


def builtin_name(name: str) -> str | None:
    """``git_clone`` for any spelling of a built-in step, else None."""
    short = name
    for prefix in _STEP_PREFIXES:
        if name.startswith(prefix):
            short = name.removeprefix(prefix)
            for sub in _STEP_SUBMODULES:
                short = short.removeprefix(sub)
            break
    return short if short in BUILTIN_STEPS else None


@dataclass(frozen=True)
class ExecutionPolicy:
    """The operator's choices; ``from_settings()`` reads them (worker flags override)."""

    allow_custom_steps: bool = False
    allowed_steps: tuple[str, ...] = ()
    allowed_git_urls: tuple[str, ...] = ()
    allowed_code_paths: tuple[str, ...] = ()
    allow_entrypoint_escape: bool = False
    allow_file_urls: bool = False
    # Where entrypoints may also resolve to, restricting nothing: a runner's own code.
    trusted_paths: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, **overrides: Any) -> ExecutionPolicy:
        settings = get_settings()
        values: dict[str, Any] = {
            f.name: getattr(settings, f"worker_{f.name}")
            for f in dataclasses.fields(cls)
            if f.name != "trusted_paths"
        }
        values.update({k: v for k, v in overrides.items() if v not in (None, (), False)})
        for name in ("allowed_steps", "allowed_git_urls", "allowed_code_paths"):
            values[name] = tuple(values[name])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ExecutionPolicy:
        values = json.loads(text)
        for name in ("allowed_steps", "allowed_git_urls", "allowed_code_paths", "trusted_paths"):
            values[name] = tuple(values.get(name) or ())
        return cls(**values)

    def trusting(self, code_paths: Iterable[str]) -> ExecutionPolicy:
        """This policy, letting entrypoints also resolve inside ``code_paths`` (a
        runner's own deployments)."""
        paths = tuple(dict.fromkeys([*self.trusted_paths, *code_paths]))
        return dataclasses.replace(self, trusted_paths=paths)

    # ------------------------------------------------------------------ pull steps
    def check_step(self, number: int, name: str) -> None:
        """Refuse step ``number`` named ``name`` unless this policy allows it."""
        short = builtin_name(name)
        listed = {builtin_name(step) or step for step in self.allowed_steps}
        if listed and (short or name) not in listed:
            allowed = ", ".join(self.allowed_steps)
            raise CodeRefused(
                f"pull step {number} ({name!r}) is not among the steps this worker allows "
                f"({allowed}); see --allowed-step (PREFECT_LITE_WORKER_ALLOWED_STEPS)"
            )
        if short is None and name not in listed and not self.allow_custom_steps:
            raise CodeRefused(
                f"pull step {number} ({name!r}) is not a built-in step "
                f"({', '.join(BUILTIN_STEPS)}); to run other callables, {_OPT_IN['custom']}"
            )

    def check_git_url(self, url: str) -> None:
        """Refuse a repository URL this policy does not allow (the message masks it)."""
        shown = mask_urls(url)
        if url.startswith("-") or "::" in url.split("/", 1)[0]:
            raise CodeRefused(f"git repository {shown!r} is not a URL git may clone")
        match = _SCHEME.match(url)
        scheme = match.group(1).lower() if match else ("ssh" if _SCP_LIKE.match(url) else None)
        if scheme == "file" and not self.allow_file_urls:
            raise CodeRefused(f"git repository {shown!r} is a local file:// URL; {_OPT_IN['file']}")
        if scheme not in ("https", "ssh", "file"):
            raise CodeRefused(
                f"git repository {shown!r}: only https://, ssh:// and user@host:path URLs "
                "are cloned (file:// with opt-in)"
            )
        if self.allowed_git_urls and not url.startswith(self.allowed_git_urls):
            raise CodeRefused(
                f"git repository {shown!r} is not under a URL this worker allows; see "
                "--allowed-git-url (PREFECT_LITE_WORKER_ALLOWED_GIT_URLS)"
            )

    def git_protocols(self) -> str:
        """``GIT_ALLOW_PROTOCOL`` for git (submodules included)."""
        return "https:ssh" + (":file" if self.allow_file_urls else "")

    # ------------------------------------------------------------------ code paths
    def check_code_directory(self, directory: Path, clones: Path) -> Path:
        """The real path of the directory the flow is loaded from, refused when allowed
        code paths are set and it is in none of them (``clones``, git's, always counts)."""
        real = Path(os.path.realpath(directory))
        if self.allowed_code_paths and not _inside_any(real, [*self.allowed_code_paths, clones]):
            raise CodeRefused(
                f"the flow's code directory {str(directory)!r} is not inside a code path "
                f"this worker allows ({', '.join(self.allowed_code_paths)})"
            )
        return real

    def check_entrypoint(self, entrypoint: str, base: Path) -> None:
        """Refuse an entrypoint whose file (or module) resolves outside ``base``."""
        location = entrypoint.rpartition(":")[0]
        if not location:
            return  # the loader says what is wrong with it
        is_file = location.endswith(".py") or "/" in location or os.sep in location
        target = _file_target(base, location) if is_file else _module_target(base, location)
        if target is None or _inside_any(target, [base]):
            return
        if self.allow_entrypoint_escape:
            return
        if _inside_any(target, [*self.allowed_code_paths, *self.trusted_paths]):
            return
        raise CodeRefused(
            f"entrypoint {entrypoint!r} resolves to {str(target)!r}, outside the deployment's "
            f"path {str(base)!r}; to load code from elsewhere, {_OPT_IN['escape']}"
        )


def _file_target(base: Path, location: str) -> Path:
    return Path(os.path.realpath(base / location))


def _module_target(base: Path, location: str) -> Path | None:
    """Where ``package.module``'s top package would be imported from, ``base`` first on
    the path (found without importing anything); None if nowhere."""
    top = location.split(".", 1)[0]
    added = str(base) not in sys.path
    if added:
        sys.path.insert(0, str(base))
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    finally:
        if added:
            sys.path.remove(str(base))
    if spec is None:
        return None
    where = spec.origin if spec.origin not in (None, "built-in", "frozen") else None
    if where is None and spec.submodule_search_locations:
        where = next(iter(spec.submodule_search_locations), None)
    return Path(os.path.realpath(where)) if where else Path(f"<{spec.origin or top}>")


def _inside_any(path: Path, roots: Iterable[str | Path]) -> bool:
    for root in roots:
        real = Path(os.path.realpath(root))
        if path == real or path.is_relative_to(real):
            return True
    return False
