"""Pull steps: what a worker runs to get a deployment's code before loading its flow.

A deployment stores its steps as a list of one-key dicts, Prefect style::

    [{"prefect_lite.deployments.steps.git_clone": {"id": "clone",
                                                   "repository": "https://host/repo.git",
                                                   "branch": "main"}},
     {"prefect_lite.deployments.steps.set_working_directory":
          {"directory": "{{ clone.directory }}"}}]

The built-in steps are ``git_clone`` (``deployments/git.py``), ``set_working_directory``,
``run_shell_script`` and ``pip_install_requirements``, under Prefect's names
(``prefect.deployments.steps.X``) and ours; what else may run is the executing process's
policy (``deployments/policy.py``). ``run_steps`` checks every step against the policy,
then calls each function with its arguments, placeholders filled in
(``deployments/templating.py``: earlier outputs, Secret blocks, variables). Steps return
dicts; their outputs are merged and returned (``directory`` is where the code now is).
"""

from __future__ import annotations

import importlib
import os
import shlex
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect_lite.deployments.git import clone_cache_dir, git_clone, protocols
from prefect_lite.deployments.policy import ExecutionPolicy, builtin_name
from prefect_lite.deployments.templating import Renderer
from prefect_lite.exceptions import PullStepError

__all__ = [
    "clone_cache_dir",
    "git_clone",
    "pip_install_requirements",
    "run_shell_script",
    "run_steps",
    "set_working_directory",
]


def set_working_directory(directory: str) -> dict[str, str]:
    """Change the process's working directory (the flow is loaded relative to it)."""
    try:
        os.chdir(directory)
    except OSError as exc:
        raise PullStepError(f"cannot change to directory {directory!r}: {exc.strerror}") from None
    return {"directory": str(Path(directory).resolve())}


def run_shell_script(
    script: str,
    directory: str | None = None,
    env: dict[str, str] | None = None,
    stream_output: bool = True,
    expand_env_vars: bool = False,
) -> dict[str, str]:
    """Run each line of ``script`` as one command (split like a shell would, but no shell
    runs it: no pipes, globs or ``;``), in ``directory``, with ``env`` added to the
    environment (``$NAME`` expanded first with ``expand_env_vars``). A command that fails
    fails the step. Returns ``{"stdout": ..., "stderr": ...}`` of all commands."""
    environment = {**os.environ, **{str(k): str(v) for k, v in (env or {}).items()}}
    out: list[str] = []
    err: list[str] = []
    for line in script.splitlines():
        command = string.Template(line).safe_substitute(environment) if expand_env_vars else line
        try:
            argv = shlex.split(command, comments=True)
        except ValueError as exc:
            raise PullStepError(f"run_shell_script cannot split {line!r}: {exc}") from None
        if argv:
            stdout, stderr = _run(argv, directory, environment, stream_output)
            out.append(stdout.rstrip("\n"))
            err.append(stderr.rstrip("\n"))
    return {"stdout": "\n".join(out).strip(), "stderr": "\n".join(err).strip()}


def pip_install_requirements(
    directory: str | None = None,
    requirements_file: str = "requirements.txt",
    stream_output: bool = True,
) -> dict[str, str]:
    """``pip install -r requirements_file`` (relative to ``directory``) into the Python
    that runs the worker. Returns ``{"stdout": ..., "stderr": ...}``."""
    argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-r"]
    stdout, stderr = _run([*argv, requirements_file], directory, dict(os.environ), stream_output)
    return {"stdout": stdout.strip(), "stderr": stderr.strip()}


def _run(
    argv: list[str], directory: str | None, env: dict[str, str], stream: bool
) -> tuple[str, str]:
    try:
        done = subprocess.run(
            argv, cwd=directory, env=env, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise PullStepError(
            f"no such command {argv[0]!r} (or no directory {directory!r})"
        ) from None
    except OSError as exc:
        raise PullStepError(f"cannot run {argv[0]!r}: {exc.strerror}") from None
    if stream:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = f": {lines[-1]}" if lines else ""
        raise PullStepError(f"{argv[0]!r} exited with status {done.returncode}{reason}")
    return done.stdout, done.stderr


def run_steps(steps: list[dict[str, Any]], policy: ExecutionPolicy | None = None) -> dict[str, Any]:
    """Run pull steps in order, as ``policy`` (default: this process's settings) allows;
    the merged outputs. Every step is checked before the first one runs; a step's
    rendered arguments (secrets filled in) are checked again just before it runs."""
    policy = policy or ExecutionPolicy.from_settings()
    parsed = [_parsed(number, step) for number, step in enumerate(steps, start=1)]
    for number, name, args in parsed:
        policy.check_step(number, name)
        _check_arguments(policy, name, args, rendered=False)
    renderer = Renderer()
    outputs: dict[str, Any] = {}
    token = protocols.set(policy.git_protocols())
    try:
        for _number, name, raw_args in parsed:
            args = dict(raw_args)
            step_id = args.pop("id", None)
            args.pop("requires", None)  # Prefect's "install this package first": not done here
            args = renderer.render(args)
            _check_arguments(policy, name, args, rendered=True)
            result = _resolve(name)(**args) or {}
            if not isinstance(result, dict):
                raise PullStepError(
                    f"pull step {name} returned {type(result).__name__}, not a dict"
                )
            outputs.update(result)
            if step_id:
                renderer.outputs[str(step_id)] = result
    except PullStepError as exc:
        raise type(exc)(renderer.scrub(str(exc))) from None
    except Exception as exc:
        raise PullStepError(
            renderer.scrub(f"pull step failed: {type(exc).__name__}: {exc}")
        ) from None
    finally:
        protocols.reset(token)
    return outputs


def _parsed(number: int, step: Any) -> tuple[int, str, dict[str, Any]]:
    if not isinstance(step, dict) or len(step) != 1:
        raise PullStepError(f"pull step {number} must be a mapping with one function name")
    [(name, args)] = step.items()
    if not isinstance(name, str) or not (args is None or isinstance(args, dict)):
        raise PullStepError(f"pull step {number} must map a function name to its arguments")
    return number, name, dict(args or {})


def _check_arguments(
    policy: ExecutionPolicy, name: str, args: dict[str, Any], rendered: bool
) -> None:
    """The git URL of a clone step (once it holds no placeholder)."""
    if builtin_name(name) != "git_clone":
        return
    repository = args.get("repository")
    if isinstance(repository, str) and (rendered or "{{" not in repository):
        policy.check_git_url(repository)


def _resolve(path: str) -> Any:
    short = builtin_name(path)
    if short is not None:
        return globals()[short]
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise PullStepError(f"unknown pull step {path!r}") from None
