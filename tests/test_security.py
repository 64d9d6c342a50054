"""Regression tests for the attacks of the security review: each reproduces one and
asserts it is refused (a clear message, a file never written, a value never shown)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_lite import _time
from prefect_lite.blocks.system import Secret
from prefect_lite.client import get_client
from prefect_lite.deployments import RunnerDeployment
from prefect_lite.deployments.execution import load_deployment_flow, read_deployment_to_run
from prefect_lite.deployments.git import git_clone
from prefect_lite.deployments.policy import ExecutionPolicy
from prefect_lite.deployments.runner import Runner
from prefect_lite.deployments.steps import run_steps
from prefect_lite.exceptions import CodeRefused, PullStepError
from prefect_lite.redaction import MASK
from prefect_lite.schemas import Deployment
from prefect_lite.server import create_app
from prefect_lite.settings import Settings, reload_settings
from prefect_lite.states import Scheduled
from prefect_lite.storage.connection import get_redis
from prefect_lite.variables import Variable
from tests._live_server import serve
from tests._workers import read, trigger, wait_final, worker_process
from tests.helpers import REPO_ROOT, python_env, wait_for

# ---- code execution on workers ----

STEPS = "prefect.deployments.steps"
FLOW_SOURCE = """
from pathlib import Path

from prefect_lite import flow

Path({marker!r}).write_text("imported")


@flow
def f() -> str:
    return "ran"
"""


def _pool() -> None:
    with get_client(sync_client=True) as client:
        client.create_work_pool("pool")


def _deploy(name: str, **fields: Any) -> Deployment:
    """A deployment of the worker fixture flow ``hello`` unless fields say otherwise."""
    fields.setdefault("entrypoint", "tests/fixtures/worker_flows.py:hello")
    fields.setdefault("path", str(REPO_ROOT))
    with get_client(sync_client=True) as client:
        return client.create_deployment("hello", name, work_pool_name="pool", **fields)


def _flow_file(directory: Path, marker: Path) -> Path:
    """``directory/x.py`` with flow ``f``; importing it writes ``marker``."""
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "x.py"
    file.write_text(FLOW_SOURCE.format(marker=str(marker)))
    return file


def _message(run: Any) -> str:
    return str(run.state.message or "")


def test_a_dotted_callable_pull_step_never_runs_without_the_workers_opt_in(
    tmp_path: Path,
) -> None:
    _pool()
    marker = tmp_path / "pwned"
    attack = [{"subprocess.run": {"args": f"touch {marker}", "shell": True}}]
    deployment = _deploy("custom", pull_steps=attack)
    with worker_process(tmp_path, name="plain"):
        refused = wait_final(trigger(deployment).id)
    assert refused.state_name == "Failed"
    assert "pull step 1 ('subprocess.run') is not a built-in step" in _message(refused)
    assert "--allow-custom-steps" in _message(refused)
    assert not marker.exists()
    with worker_process(tmp_path, "pool", "--allow-custom-steps", name="trusting"):
        ran = wait_final(trigger(deployment).id)
    assert marker.exists()  # the operator allowed it: the callable ran
    assert "built-in" not in _message(ran)


def test_a_worker_narrowed_to_some_steps_refuses_the_others_before_any_runs(
    tmp_path: Path,
) -> None:
    _pool()
    marker = tmp_path / "shell-ran"
    steps = [
        {f"{STEPS}.set_working_directory": {"directory": str(REPO_ROOT)}},
        {f"{STEPS}.run_shell_script": {"script": f"touch {marker}"}},
    ]
    deployment = _deploy("narrow", pull_steps=steps)
    with worker_process(tmp_path, "pool", "--allowed-step", "set_working_directory"):
        refused = wait_final(trigger(deployment).id)
    assert refused.state_name == "Failed" and not marker.exists()
    assert "pull step 2 ('prefect.deployments.steps.run_shell_script')" in _message(refused)
    assert "--allowed-step" in _message(refused)


def test_an_allowed_steps_list_is_the_whole_list_in_any_spelling() -> None:
    policy = ExecutionPolicy(allowed_steps=("prefect.deployments.steps.git_clone", "my.step"))
    policy.check_step(1, "git_clone")
    policy.check_step(2, "prefect_lite.deployments.steps.git_clone")
    policy.check_step(3, "my.step")  # a custom step named by the operator is allowed
    for refused in ("run_shell_script", "my.other_step"):
        with pytest.raises(CodeRefused, match="not among the steps this worker allows"):
            policy.check_step(4, refused)


def test_run_shell_script_runs_no_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = run_steps([{f"{STEPS}.run_shell_script": {
        "script": "echo one; touch never-made\necho $HOME | cat",
        "stream_output": False,
    }}])  # fmt: skip
    assert out["stdout"] == "one; touch never-made\n$HOME | cat"
    assert not Path("never-made").exists()
    expanded = run_steps([{f"{STEPS}.run_shell_script": {
        "script": "echo $GREETING", "env": {"GREETING": "hi there"},
        "expand_env_vars": True, "stream_output": False,
    }}])  # fmt: skip
    assert expanded["stdout"] == "hi there"
    with pytest.raises(PullStepError, match="exited with status 3"):
        run_steps([{"run_shell_script": {"script": f"{sys.executable} -c 'exit(3)'",
                                         "stream_output": False}}])  # fmt: skip


def test_pip_install_requirements_installs_from_the_steps_directory(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# nothing to install\n")
    out = run_steps(
        [{f"{STEPS}.pip_install_requirements": {"directory": str(tmp_path),
                                                "stream_output": False}}]
    )  # fmt: skip
    assert set(out) == {"stdout", "stderr"}
    with pytest.raises(PullStepError, match="exited with status"):
        run_steps([{"pip_install_requirements": {"directory": str(tmp_path),
                                                 "requirements_file": "missing.txt",
                                                 "stream_output": False}}])  # fmt: skip


def test_an_entrypoint_outside_the_deployments_path_is_refused_by_a_worker(
    tmp_path: Path,
) -> None:
    _pool()
    project, marker = tmp_path / "project", tmp_path / "imported"
    project.mkdir()
    _flow_file(tmp_path / "elsewhere", marker)
    deployment = _deploy("dotdot", entrypoint="../elsewhere/x.py:f", path=str(project))
    with worker_process(tmp_path, name="strict"):
        refused = wait_final(trigger(deployment).id)
    assert refused.state_name == "Failed" and not marker.exists()
    assert "entrypoint '../elsewhere/x.py:f' resolves to" in _message(refused)
    assert "outside the deployment's path" in _message(refused)
    assert "--allow-entrypoint-escape" in _message(refused)
    with worker_process(tmp_path, "pool", "--allow-entrypoint-escape", name="lenient"):
        allowed = wait_final(trigger(deployment).id)
    assert allowed.state_name == "Completed" and marker.exists()


def _escaping(entrypoint: str, path: Path) -> Deployment:
    return Deployment(
        name="d", flow_name="f", flow_id=uuid.uuid4(), entrypoint=entrypoint, path=str(path)
    )


def test_an_absolute_entrypoint_is_refused_unless_its_directory_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    project, marker = tmp_path / "project", tmp_path / "imported"
    project.mkdir()
    file = _flow_file(tmp_path / "elsewhere", marker)
    deployment = _escaping(f"{file}:f", project)
    with pytest.raises(CodeRefused, match="outside the deployment's path"):
        load_deployment_flow(deployment, ExecutionPolicy())
    assert not marker.exists()
    allowed = ExecutionPolicy(allowed_code_paths=(str(project), str(file.parent)))
    assert load_deployment_flow(deployment, allowed).name == "f" and marker.exists()


def test_a_symlink_leading_out_of_the_deployments_path_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    project, marker = tmp_path / "project", tmp_path / "imported"
    project.mkdir()
    file = _flow_file(tmp_path / "elsewhere", marker)
    (project / "inside.py").symlink_to(file)
    (project / "pkg").symlink_to(file.parent, target_is_directory=True)
    for entrypoint in ("inside.py:f", "pkg/x.py:f"):
        with pytest.raises(CodeRefused, match=f"entrypoint '{entrypoint}' resolves to"):
            load_deployment_flow(_escaping(entrypoint, project), ExecutionPolicy())
    with pytest.raises(CodeRefused, match="outside"):  # a module found outside, not imported
        load_deployment_flow(_escaping("subprocess:run", project), ExecutionPolicy())
    assert not marker.exists()
    lenient = ExecutionPolicy(allow_entrypoint_escape=True)
    assert load_deployment_flow(_escaping("inside.py:f", project), lenient).name == "f"


def test_code_outside_the_allowed_code_paths_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    allowed_root, other = tmp_path / "srv", tmp_path / "home-dir"
    _flow_file(allowed_root / "flows", tmp_path / "ok")
    _flow_file(other, tmp_path / "not-ok")
    policy = ExecutionPolicy(allowed_code_paths=(str(allowed_root),))
    assert load_deployment_flow(_escaping("x.py:f", allowed_root / "flows"), policy).name == "f"
    with pytest.raises(CodeRefused, match="not inside a code path this worker allows"):
        load_deployment_flow(_escaping("x.py:f", other), policy)
    assert not (tmp_path / "not-ok").exists()


@pytest.mark.parametrize(
    "repository",
    [
        "--upload-pack=touch {marker}",
        "-u touch {marker}",
        "ext::sh -c touch% {marker}",
        "fd::3",
    ],
)
def test_git_urls_that_are_options_or_transport_helpers_are_refused(
    repository: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    url = repository.format(marker=marker)
    step = {f"{STEPS}.git_clone": {"repository": url}}
    lenient = ExecutionPolicy(allow_file_urls=True, allow_custom_steps=True)
    with pytest.raises(CodeRefused, match="is not a URL git may clone"):
        run_steps([step], lenient)
    with pytest.raises(PullStepError, match="is not a URL git may clone"):
        git_clone(url)  # called directly, too
    assert not marker.exists()


def test_git_branches_and_commits_cannot_be_options(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(PullStepError, match="is not a branch name"):
        git_clone("https://example.invalid/r.git", branch=f"--upload-pack=touch {marker}")
    with pytest.raises(PullStepError, match="is not a hexadecimal commit id"):
        git_clone("https://example.invalid/r.git", commit=f"--upload-pack=touch {marker}")
    assert not marker.exists()


def test_only_https_ssh_and_opted_in_file_urls_are_cloned() -> None:
    strict = ExecutionPolicy()
    for url in ("https://h/r.git", "ssh://git@h/r.git", "git@github.com:org/r.git"):
        strict.check_git_url(url)
    for url in ("http://h/r.git", "git://h/r.git", "ftp://h/r", "/srv/repo", "repo"):
        with pytest.raises(CodeRefused, match="only https://, ssh:// and user@host:path"):
            strict.check_git_url(url)
    with pytest.raises(CodeRefused, match=r"local file:// URL; .*--allow-file-urls"):
        strict.check_git_url("file:///srv/repo")
    ExecutionPolicy(allow_file_urls=True).check_git_url("file:///srv/repo")
    narrow = ExecutionPolicy(allowed_git_urls=("https://github.com/acme/",))
    narrow.check_git_url("https://github.com/acme/flows.git")
    with pytest.raises(CodeRefused, match="not under a URL this worker allows"):
        narrow.check_git_url("https://github.com/evil/flows.git")


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def flow_repo(tmp_path: Path) -> Path:
    """A local git repository holding ``flows.py`` with flow ``f``."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "--quiet", "--initial-branch", "main", cwd=repo)
    (repo / "flows.py").write_text(FLOW_SOURCE.format(marker=str(tmp_path / "cloned-flow")))
    _git("add", "flows.py", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x", cwd=repo)
    return repo


def test_git_gets_a_double_dash_before_the_url(
    flow_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``git`` on PATH that records its arguments, then runs the real one."""
    shim = tmp_path / "bin"
    shim.mkdir()
    calls = tmp_path / "git-calls"
    real_git = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    (shim / "git").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {real_git} "$@"\n')
    (shim / "git").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    steps = [
        {f"{STEPS}.git_clone": {"id": "clone", "repository": f"file://{flow_repo}"}},
        {f"{STEPS}.set_working_directory": {"directory": "{{ clone.directory }}"}},
    ]
    out = run_steps(steps, ExecutionPolicy(allow_file_urls=True))
    assert (Path(out["directory"]) / "flows.py").exists()
    clone = next(line for line in calls.read_text().splitlines() if line.startswith("clone"))
    assert f" -- file://{flow_repo} " in f"{clone} "
    run_steps(steps, ExecutionPolicy(allow_file_urls=True))  # updates the cached checkout
    fetch = next(line for line in calls.read_text().splitlines() if line.startswith("fetch"))
    assert f" -- file://{flow_repo} " in f"{fetch} "


def test_a_secret_block_in_a_pull_step_is_resolved_on_the_worker_and_stored_nowhere(
    tmp_path: Path,
) -> None:
    _pool()
    secret = f"s3cr3t-{uuid.uuid4().hex[:8]}"
    Secret(value=secret).save("deploy-token")
    marker_prefix = tmp_path / "token"
    step = {f"{STEPS}.run_shell_script": {
        "script": f"touch {marker_prefix}-$TOKEN",
        "env": {"TOKEN": "{{ prefect.blocks.secret.deploy-token }}"},
        "expand_env_vars": True,
    }}  # fmt: skip
    deployment = _deploy("templated", pull_steps=[step])
    with worker_process(tmp_path, name="secretive"):
        done = wait_final(trigger(deployment).id)
    assert done.state_name == "Completed"
    assert Path(f"{marker_prefix}-{secret}").exists()  # the worker had the value
    r = get_redis()
    holders = [_text(key) for key in r.scan_iter() if secret.encode() in _dump(r, key)]
    assert holders and all(":block:" in key for key in holders), holders  # the block only
    with serve(create_app(Settings(api_key=None))) as base:
        answer = httpx.get(f"{base}/api/deployments/{deployment.id}").text
    assert "{{ prefect.blocks.secret.deploy-token }}" in answer and secret not in answer


def _text(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)


def _dump(r: Any, key: Any) -> bytes:
    kind = _text(r.type(key))
    if kind == "string":
        value = r.get(key)
        return value if isinstance(value, bytes) else str(value).encode()
    if kind == "hash":
        return repr(r.hgetall(key)).encode()
    if kind in ("list", "stream", "zset", "set"):
        return repr(r.dump(key)).encode()
    return b""


def test_pull_steps_template_variables_and_earlier_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # set_working_directory changes it; put back after
    Variable.set("clone_dir", str(tmp_path))
    out = run_steps([
        {f"{STEPS}.set_working_directory": {"id": "cd",
                                            "directory": "{{ prefect.variables.clone_dir }}"}},
        {f"{STEPS}.run_shell_script": {"script": "echo {{ cd.directory }}",
                                       "stream_output": False}},
    ])  # fmt: skip
    assert out["stdout"] == str(tmp_path.resolve())
    with pytest.raises(PullStepError, match="no secret block named 'ghost'"):
        run_steps([{"run_shell_script": {"script": "echo {{ prefect.blocks.secret.ghost }}"}}])


def test_a_failing_step_does_not_reveal_the_secret_it_used() -> None:
    Secret(value="hunter2-token").save("pw")
    step = {"run_shell_script": {"script": "no-such-command-{{ prefect.blocks.secret.pw }}"}}
    with pytest.raises(PullStepError) as caught:
        run_steps([step])
    assert "hunter2-token" not in str(caught.value) and MASK in str(caught.value)


def test_credentials_in_stored_pull_steps_are_masked_on_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "https://deployer:ghp_tok3n@git.example.com/acme/flows.git"
    steps = [{f"{STEPS}.git_clone": {"repository": url, "access_token": "glpat-xyz"}}]
    with caplog.at_level(logging.WARNING, logger="prefect_lite.api.deployments"):
        created = _deploy("inline", pull_steps=steps)
    assert "stores credentials inline" in caplog.text and "Secret block" in caplog.text
    assert "ghp_tok3n" not in caplog.text and "glpat-xyz" not in caplog.text
    shown = {
        "repository": f"https://deployer:{MASK}@git.example.com/acme/flows.git",
        "access_token": MASK,
    }
    with get_client(sync_client=True) as client:
        for read in (
            created,
            client.read_deployment(created.id),
            client.read_deployment_by_name("hello/inline"),
            client.read_deployments()[0],
        ):
            assert read.pull_steps == [{f"{STEPS}.git_clone": shown}]
        assert read_deployment_to_run(client, created.id).pull_steps == steps  # the worker's
        # A masked copy sent back (read, edited elsewhere, registered again) keeps the real one.
        resent = client.read_deployment(created.id).pull_steps
        _deploy("inline", pull_steps=resent)
        assert client.read_deployment(created.id, include_secrets=True).pull_steps == steps
    with serve(create_app(Settings(api_key=None))) as base:
        for answer in (
            httpx.get(f"{base}/api/deployments/{created.id}"),
            httpx.get(f"{base}/api/deployments/name/hello/inline"),
            httpx.post(f"{base}/api/deployments/filter", json={}),
        ):
            assert answer.status_code == 200 and "ghp_tok3n" not in answer.text
            assert "glpat-xyz" not in answer.text and MASK in answer.text
    cli = subprocess.run(
        [sys.executable, "-m", "prefect_lite", "deployment", "inspect", "hello/inline"],
        env=python_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0 and "git.example.com" in cli.stdout
    assert "ghp_tok3n" not in cli.stdout + cli.stderr and "glpat-xyz" not in cli.stdout


def test_a_runner_refuses_custom_steps_written_over_its_deployment(tmp_path: Path) -> None:
    """Anyone who may deploy can overwrite a served deployment: its runs obey the policy."""
    marker = tmp_path / "pwned"
    runner = Runner()
    served = RunnerDeployment.from_entrypoint(
        "tests/fixtures/worker_flows.py:hello", "served", base_dir=REPO_ROOT
    )
    deployment_id = runner.add_deployment(served)
    with get_client(sync_client=True) as client:
        client.create_deployment(
            "hello", "served", entrypoint=served.entrypoint, path=served.path,
            pull_steps=[{"os.system": {"command": f"touch {marker}"}}],
        )  # fmt: skip
        run = client.create_flow_run(
            "hello", deployment_id=deployment_id, state=Scheduled(scheduled_time=_time.now())
        )

    def ended() -> Any:
        runner.run_once()
        found = read(run.id)
        return found if found.state.is_final() and not runner.running else None

    done = wait_for(ended, timeout=30, interval=0.05, message="the served run did not end")
    assert done.state_name == "Failed" and "not a built-in step" in _message(done)
    assert not marker.exists()


def test_worker_settings_read_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_LITE_WORKER_ALLOWED_STEPS", "git_clone, set_working_directory")
    monkeypatch.setenv("PREFECT_LITE_WORKER_ALLOW_CUSTOM_STEPS", "true")
    reload_settings()
    policy = ExecutionPolicy.from_settings(allowed_git_urls=("https://h/",))
    assert policy.allowed_steps == ("git_clone", "set_working_directory")
    assert policy.allow_custom_steps and policy.allowed_git_urls == ("https://h/",)
