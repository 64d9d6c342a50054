"""``prefect_lite.yaml``: many deployments of one project in a file.

    name: my-project
    pull:                       # default pull steps of every deployment (optional)
      - prefect_lite.deployments.steps.git_clone:
          repository: https://example.com/repo.git
    deployments:
      - name: nightly
        entrypoint: flows/etl.py:etl
        work_pool: {name: default, work_queue_name: default}
        parameters: {day: yesterday}
        schedules:
          - cron: "0 2 * * *"
            timezone: Europe/Berlin
        concurrency_limit: {limit: 1, collision_strategy: CANCEL_NEW}

Paths (entrypoints, ``path``) are relative to the file's directory. ``deploy_all`` loads
and checks every selected deployment first and registers them only if all are valid.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from prefect_lite.deployments.base import RunnerDeployment, deploy
from prefect_lite.exceptions import UserError, ValidationError

PROJECT_FILE = "prefect_lite.yaml"
_DEPLOYMENT_KEYS = {
    "name", "entrypoint", "path", "pull", "description", "version", "tags", "parameters",
    "work_pool", "work_pool_name", "work_queue_name", "job_variables", "schedules", "paused",
    "concurrency_limit", "overlap", "enforce_parameter_schema", "start_timeout_seconds",
}  # fmt: skip


def load_project(path: str | Path = PROJECT_FILE) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ValidationError(f"no {file} here; create one with initialize_project()")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(f"{file} is not valid YAML: {_one_line(exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("deployments", []), list):
        raise ValidationError(f"{file} must be a mapping with a 'deployments' list")
    return data


def deployments_from_file(
    path: str | Path = PROJECT_FILE, names: list[str] | None = None
) -> list[RunnerDeployment]:
    """Build (and check) the deployments in the file, or only those named."""
    file = Path(path).resolve()
    project = load_project(file)
    specs: list[dict[str, Any]] = project.get("deployments") or []
    chosen = [s for s in specs if not names or (isinstance(s, dict) and s.get("name") in names)]
    missing = set(names or []) - {s.get("name") for s in chosen}
    if missing:
        raise ValidationError(f"{file.name} has no deployment named {', '.join(sorted(missing))}")
    if not chosen:
        raise ValidationError(f"{file.name} lists no deployments")
    return [_build(spec, project, file.parent) for spec in chosen]


def deploy_all(
    path: str | Path = PROJECT_FILE,
    names: list[str] | None = None,
    work_pool_name: str | None = None,
    print_next_steps_message: bool = True,
) -> list[uuid.UUID]:
    """Register every deployment of the file (or those named)."""
    built = deployments_from_file(path, names)
    return deploy(
        *built, work_pool_name=work_pool_name, print_next_steps_message=print_next_steps_message
    )


def _build(spec: Any, project: dict[str, Any], root: Path) -> RunnerDeployment:
    if not isinstance(spec, dict):
        raise ValidationError(f"each deployment must be a mapping, not {spec!r}")
    label = spec.get("name") or "<unnamed>"
    unknown = set(spec) - _DEPLOYMENT_KEYS
    if unknown:
        raise ValidationError(f"deployment {label!r}: unknown key(s) {', '.join(sorted(unknown))}")
    for required in ("name", "entrypoint"):
        if not spec.get(required):
            raise ValidationError(f"deployment {label!r} needs {required!r}")
    pool = spec.get("work_pool") or {}
    if not isinstance(pool, dict):
        raise ValidationError(f"deployment {label!r}: work_pool must be a mapping with a name")
    base = root / spec["path"] if spec.get("path") else root
    pull = spec.get("pull", project.get("pull")) or []
    options: dict[str, Any] = {
        "parameters": spec.get("parameters") or {},
        "schedules": spec.get("schedules") or [],
        "description": spec.get("description"),
        "version": spec.get("version"),
        "tags": spec.get("tags") or [],
        "paused": bool(spec.get("paused", False)),
        "work_pool_name": pool.get("name") or spec.get("work_pool_name"),
        "work_queue_name": pool.get("work_queue_name") or spec.get("work_queue_name"),
        "job_variables": pool.get("job_variables") or spec.get("job_variables") or {},
        "concurrency_limit": spec.get("concurrency_limit"),
        "overlap": spec.get("overlap", "allow"),
        "enforce_parameter_schema": bool(spec.get("enforce_parameter_schema", True)),
        "start_timeout_seconds": spec.get("start_timeout_seconds"),
        "pull_steps": list(pull),
        "path": None if pull else str(base.resolve()),
    }
    try:
        return RunnerDeployment.from_entrypoint(spec["entrypoint"], spec["name"], base, **options)
    except UserError as exc:
        raise type(exc)(f"deployment {label!r}: {exc}") from None


def initialize_project(
    name: str | None = None, recipe: str | None = None, directory: str | Path | None = None
) -> list[str]:
    """Write a starter ``prefect_lite.yaml`` (never over an existing one); files created.

    ``recipe`` is ``local`` (default: run from this directory) or ``git`` (workers clone
    the repository first; fill in its URL).
    """
    root = Path(directory or Path.cwd())
    target = root / PROJECT_FILE
    if target.exists():
        return []
    if recipe not in (None, "local", "git"):
        raise ValidationError(f"unknown recipe {recipe!r}; choose 'local' or 'git'")
    pull = (
        "pull:\n"
        "  - prefect_lite.deployments.steps.git_clone:\n"
        "      id: clone\n"
        "      repository: https://example.com/your/repo.git  # change me\n"
        "      branch: main\n"
        "  - prefect_lite.deployments.steps.set_working_directory:\n"
        '      directory: "{{ clone.directory }}"\n'
        if recipe == "git"
        else "pull: []\n"
    )
    target.write_text(_STARTER.format(name=name or root.resolve().name, pull=pull))
    return [str(target)]


_STARTER = """\
# Deployments of this project. Register them all with: prefect-lite deploy --all
name: {name}
prefect_lite_version: 0.1.0

# Steps a worker runs before loading a flow; empty: run from this directory.
{pull}
deployments:
  - name: my-deployment
    entrypoint: flows.py:my_flow     # path/to/file.py:function, relative to this file
    work_pool:
      name: default
      work_queue_name: default
    parameters: {{}}
    tags: []
    schedules: []
    # schedules:
    #   - cron: "0 9 * * *"
    #     timezone: Europe/Berlin
    #   - interval: 3600
    #     catchup: latest             # skip (default) | latest | all
    # overlap: skip                   # allow (default) | skip | buffer_one | cancel_other
    # concurrency_limit: {{limit: 1, collision_strategy: ENQUEUE}}
"""


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
