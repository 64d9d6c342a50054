"""Registering deployments: flow.deploy, to_deployment + deploy, from_source, YAML, the API."""

from __future__ import annotations

import subprocess
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from prefect_lite import flow
from prefect_lite.client import get_client
from prefect_lite.deployments import (
    RunnerDeployment,
    deploy,
    deploy_all,
    initialize_project,
    load_flow,
    to_deployment,
)
from prefect_lite.deployments.policy import ExecutionPolicy
from prefect_lite.deployments.schema import parameter_schema
from prefect_lite.deployments.steps import git_clone, run_steps
from prefect_lite.exceptions import (
    EntrypointError,
    MissingFlowError,
    NotAFlowError,
    ObjectNotFound,
    ParameterTypeError,
    PullStepError,
    SignatureMismatchError,
    ValidationError,
)
from prefect_lite.flows import Flow
from prefect_lite.schedules import Cron, Interval
from prefect_lite.schemas import Deployment, WorkPool
from prefect_lite.settings import temporary_settings
from prefect_lite.storage.records import NamedRecords

FLOW_FILE = '''
from datetime import date

from prefect_lite import flow


@flow(name="etl")
def etl(day: date, retries: int = 3, label: str = "x") -> str:
    """Extract, transform, load."""
    return f"{day} {retries} {label}"


@flow
def anything(**kwargs):
    return kwargs


def plain():
    return 1
'''


@flow(name="local-etl", version="7")
def local_etl(day: date, limit: int = 10) -> int:
    """A flow defined in this test module."""
    return limit


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with flows.py, made the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "flows.py").write_text(FLOW_FILE)
    monkeypatch.chdir(root)
    return root


def all_deployments() -> list[Deployment]:
    with get_client(sync_client=True) as client:
        return client.read_deployments()


def read(name: str) -> Deployment:
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name)


# ----------------------------------------------------------------------------- SDK


def test_flow_deploy_registers_and_redeploy_updates_in_place(project: Path) -> None:
    etl = load_flow("flows.py:etl")
    first = etl.deploy(
        "nightly", work_pool_name="pool", cron="0 2 * * *", timezone="Europe/Berlin",
        parameters={"day": "2024-01-02"}, tags=["prod"], print_next_steps=False,
    )  # fmt: skip
    record = read("etl/nightly")
    assert record.id == first
    assert (record.entrypoint, record.path) == ("flows.py:etl", str(project))
    assert record.parameters == {"day": "2024-01-02"}
    assert record.description == "Extract, transform, load."
    assert record.schedules[0].cron == "0 2 * * *"
    assert record.schedules[0].timezone == "Europe/Berlin"
    props = record.parameter_openapi_schema["properties"]
    assert props["day"]["format"] == "date" and props["retries"]["default"] == 3
    assert record.parameter_openapi_schema["required"] == ["day"]
    again = etl.deploy(
        "nightly", work_pool_name="pool", cron="0 2 * * *", timezone="Europe/Berlin",
        parameters={"day": "2024-01-03"}, print_next_steps=False,
    )  # fmt: skip
    updated = read("etl/nightly")
    assert again == first and updated.schedules[0].id == record.schedules[0].id
    assert updated.parameters == {"day": "2024-01-03"} and updated.created == record.created
    assert len(all_deployments()) == 1


def test_to_deployment_and_deploy_many(project: Path) -> None:
    etl = load_flow("flows.py:etl")
    built = [
        etl.to_deployment("hourly", interval=3600, parameters={"day": "2024-01-01"}),
        to_deployment(local_etl, "daily", schedules=[Cron("0 6 * * *")], overlap="skip"),
    ]
    assert isinstance(built[0], RunnerDeployment)
    ids = deploy(*built, work_pool_name="pool", print_next_steps_message=False)
    assert len(ids) == 2
    local = read("local-etl/daily")
    assert local.entrypoint and local.entrypoint.endswith("test_deployments.py:local_etl")
    assert local.version == "7" and local.overlap == "skip" and local.work_pool_name == "pool"


def test_entrypoint_is_relative_to_the_working_directory(project: Path) -> None:
    built = to_deployment(local_etl, "x")
    assert built.entrypoint and Path(built.entrypoint).is_absolute()  # not under the project
    assert built.path == str(project)


def test_deploy_needs_a_pool_and_writes_nothing_otherwise(project: Path) -> None:
    etl = load_flow("flows.py:etl")
    good = etl.to_deployment("a", work_pool_name="pool")
    pool_less = etl.to_deployment("b")
    with pytest.raises(ValidationError, match="'etl/b' has no work pool"):
        deploy(good, pool_less, print_next_steps_message=False)
    assert all_deployments() == []
    with pytest.raises(ValidationError, match="does not build images"):
        etl.deploy("c", work_pool_name="pool", image="python:3.12")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"parameters": {"dya": "2024-01-01"}}, SignatureMismatchError,
         "flow 'etl' has no parameter 'dya' \\(its parameters: day, retries, label\\)"),
        ({"parameters": {"retries": "many"}}, ParameterTypeError,
         "parameter 'retries' of flow 'etl'"),
        ({"parameters": {"day": "someday"}}, ParameterTypeError, "parameter 'day'"),
        ({"cron": "0 25 * * *"}, ValidationError, "malformed cron expression '0 25 \\* \\* \\*'"),
        ({"cron": "0 2 * * *", "timezone": "Europe/Atlantis"}, ValidationError,
         "unknown time zone 'Europe/Atlantis'"),
        ({"interval": -60}, ValidationError, "interval must be a positive number"),
        ({"rrule": "FREQ=FORTNIGHTLY"}, ValidationError, "malformed rrule"),
        ({"cron": "* * * * *", "schedules": [Interval(5)]}, ValidationError, "not both"),
        ({"schedules": [{"cron": "* * * * *", "parameters": {"nope": 1}}]},
         SignatureMismatchError, "no parameter 'nope'"),
    ],
)  # fmt: skip
def test_bad_input_is_rejected_before_anything_is_written(
    project: Path, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    etl = load_flow("flows.py:etl")
    with pytest.raises(error, match=message):
        etl.deploy("bad", work_pool_name="pool", print_next_steps=False, **options)
    assert all_deployments() == []


def test_unknown_work_pool_once_pools_exist(project: Path) -> None:
    etl = load_flow("flows.py:etl")
    etl.deploy("early", work_pool_name="anything-goes", print_next_steps=False)
    pools: NamedRecords[WorkPool] = NamedRecords("work_pool", WorkPool)
    pools.create("real", WorkPool(name="real"))
    with pytest.raises(ValidationError, match="unknown work pool 'imaginary'"):
        etl.deploy("late", work_pool_name="imaginary", print_next_steps=False)
    etl.deploy("ok", work_pool_name="real", print_next_steps=False)
    assert [d.name for d in all_deployments()] == ["early", "ok"]


def test_open_ended_flows_take_any_parameter(project: Path) -> None:
    anything = load_flow("flows.py:anything")
    built = anything.to_deployment("x", parameters={"whatever": [1, 2]})
    assert built.parameters == {"whatever": [1, 2]}
    assert built.parameter_openapi_schema["additionalProperties"] is True


def test_parameter_schema_of_a_signature() -> None:
    def fn(a: int, b: list[str] | None = None, *args: Any, c: float = 1.5) -> None: ...

    schema = parameter_schema(fn)
    assert schema["required"] == ["a"]
    assert [p["position"] for p in schema["properties"].values()] == [0, 1, 3]
    assert schema["properties"]["c"] == {"default": 1.5, "position": 3, "title": "c",
                                         "type": "number"}  # fmt: skip


def test_concurrency_and_paused_options(project: Path) -> None:
    etl = load_flow("flows.py:etl")
    etl.deploy(
        "limited", work_pool_name="pool", paused=True, print_next_steps=False,
        concurrency_limit={"limit": 2, "collision_strategy": "CANCEL_NEW"},
    )  # fmt: skip
    record = read("etl/limited")
    assert (record.concurrency_limit, record.collision_strategy) == (2, "CANCEL_NEW")
    assert record.paused


# ----------------------------------------------------------------------------- loading


def test_entrypoint_errors(project: Path) -> None:
    with pytest.raises(MissingFlowError, match="no such file"):
        load_flow("missing.py:etl")
    with pytest.raises(MissingFlowError, match="has no attribute 'nope'"):
        load_flow("flows.py:nope")
    with pytest.raises(NotAFlowError, match="not a flow"):
        load_flow("flows.py:plain")
    with pytest.raises(MissingFlowError, match="must look like"):
        load_flow("flows.py")


def test_a_flow_defined_inside_a_function_has_no_entrypoint() -> None:
    @flow
    def inner() -> None: ...

    with pytest.raises(EntrypointError, match="inside a function"):
        to_deployment(inner, "x")


# ----------------------------------------------------------------------------- sources


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A git repository with flows.py on main and a second commit; (path, first commit)."""
    path = tmp_path / "repo"
    path.mkdir()
    _git("init", "--quiet", "--initial-branch", "main", cwd=path)
    (path / "flows.py").write_text(FLOW_FILE)
    _git("add", "flows.py", cwd=path)
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    _git(*ident, "commit", "--quiet", "-m", "first", cwd=path)
    first = _git("rev-parse", "HEAD", cwd=path)
    (path / "flows.py").write_text(FLOW_FILE.replace('name="etl"', 'name="etl-v2"'))
    _git(*ident, "commit", "--quiet", "-am", "second", cwd=path)
    return path, first


def test_from_source_git_at_branch_and_commit(
    repo: tuple[Path, str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, first = repo
    url = f"file://{path}"
    latest = Flow.from_source(url, "flows.py:etl")
    assert latest.name == "etl-v2"
    pinned = Flow.from_source(url, "flows.py:etl", commit=first)
    assert pinned.name == "etl"
    pinned.deploy("from-git", work_pool_name="pool", print_next_steps=False)
    record = read("etl/from-git")
    assert record.path is None and record.entrypoint == "flows.py:etl"
    clone_step = record.pull_steps[0]["prefect_lite.deployments.steps.git_clone"]
    assert clone_step == {"id": "clone", "repository": url, "commit": first}
    # What a worker does: run the steps, then load the flow from where they left it
    # (a local file:// repository only with the worker's opt-in).
    monkeypatch.chdir(home)
    with pytest.raises(PullStepError, match=r"local file:// URL; .*--allow-file-urls"):
        run_steps(record.pull_steps)
    with temporary_settings(worker_allow_file_urls=True):
        out = run_steps(record.pull_steps)
    assert Path(out["directory"]).parent == home / "repos"
    assert Path.cwd() == Path(out["directory"])
    assert load_flow(record.entrypoint).name == "etl"


def test_from_source_local_directory(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "flows.py").write_text(FLOW_FILE)
    loaded = Flow.from_source(str(other), "flows.py:etl")
    loaded.deploy("local", work_pool_name="pool", print_next_steps=False)
    record = read("etl/local")
    assert (record.path, record.entrypoint, record.pull_steps) == (str(other), "flows.py:etl", [])
    with pytest.raises(MissingFlowError, match="neither a directory nor a git URL"):
        Flow.from_source(str(tmp_path / "nowhere"), "flows.py:etl")


def test_git_clone_errors(tmp_path: Path) -> None:
    with pytest.raises(PullStepError, match="git clone failed"):
        git_clone(f"file://{tmp_path}/no-such-repo")
    with pytest.raises(PullStepError, match="a branch or a commit, not both"):
        git_clone("file:///x", branch="main", commit="abc")
    with pytest.raises(PullStepError, match="unknown pull step"):
        run_steps([{"no.such.step": {}}], ExecutionPolicy(allow_custom_steps=True))
    with pytest.raises(PullStepError, match="refers to no earlier step output"):
        run_steps([{"prefect_lite.deployments.steps.set_working_directory":
                    {"directory": "{{ clone.directory }}"}}])  # fmt: skip


def test_git_clone_of_a_branch_follows_it(repo: tuple[Path, str]) -> None:
    path, _first = repo
    directory = Path(git_clone(f"file://{path}", branch="main")["directory"])
    assert 'name="etl-v2"' in (directory / "flows.py").read_text()
    (path / "flows.py").write_text(FLOW_FILE.replace('name="etl"', 'name="etl-v3"'))
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    _git(*ident, "commit", "--quiet", "-am", "third", cwd=path)
    again = Path(git_clone(f"file://{path}", branch="main")["directory"])
    assert again == directory and 'name="etl-v3"' in (again / "flows.py").read_text()


# ----------------------------------------------------------------------------- YAML

PROJECT_YAML = """
name: demo
deployments:
  - name: nightly
    entrypoint: flows.py:etl
    work_pool: {name: pool, work_queue_name: high}
    parameters: {day: "2024-01-01"}
    schedules:
      - cron: "0 2 * * *"
        timezone: America/New_York
        catchup: latest
      - interval: 600
        slug: ten-minutes
    concurrency_limit: {limit: 1, collision_strategy: CANCEL_NEW}
    overlap: buffer_one
  - name: adhoc
    entrypoint: flows.py:anything
    work_pool_name: pool
"""


def test_yaml_project_deploys_every_deployment(project: Path) -> None:
    (project / "prefect_lite.yaml").write_text(PROJECT_YAML)
    ids = deploy_all(print_next_steps_message=False)
    assert len(ids) == 2
    nightly = read("etl/nightly")
    assert nightly.work_queue_name == "high" and nightly.overlap == "buffer_one"
    assert [s.slug for s in nightly.schedules] == [None, "ten-minutes"]
    assert nightly.schedules[0].catchup == "latest"
    assert nightly.path == str(project) and nightly.concurrency_limit == 1


def test_yaml_with_one_bad_deployment_registers_none(project: Path) -> None:
    bad = PROJECT_YAML.replace('parameters: {day: "2024-01-01"}', "parameters: {days: 3}")
    (project / "prefect_lite.yaml").write_text(bad)
    with pytest.raises(
        SignatureMismatchError, match=r"deployment 'nightly': .*no parameter 'days'"
    ):
        deploy_all(print_next_steps_message=False)
    assert all_deployments() == []
    (project / "prefect_lite.yaml").write_text(PROJECT_YAML.replace("overlap:", "overlapp:"))
    with pytest.raises(ValidationError, match="unknown key\\(s\\) overlapp"):
        deploy_all(print_next_steps_message=False)
    ids = deploy_all(project / "prefect_lite.yaml", names=["adhoc"], print_next_steps_message=False)
    assert len(ids) == 1  # the broken one was not asked for


def test_yaml_name_selection_and_missing_file(project: Path) -> None:
    (project / "prefect_lite.yaml").write_text(PROJECT_YAML)
    assert len(deploy_all(names=["adhoc"], print_next_steps_message=False)) == 1
    assert [d.name for d in all_deployments()] == ["adhoc"]
    with pytest.raises(ValidationError, match="no deployment named ghost"):
        deploy_all(names=["ghost"])
    with pytest.raises(ValidationError, match=r"no .*nowhere\.yaml here"):
        deploy_all("nowhere.yaml")


def test_initialize_project_writes_a_starter_once(project: Path) -> None:
    assert initialize_project(name="demo") == [str(project / "prefect_lite.yaml")]
    text = (project / "prefect_lite.yaml").read_text()
    assert "name: demo" in text and "entrypoint: flows.py:my_flow" in text
    assert initialize_project() == []
    (project / "prefect_lite.yaml").unlink()
    initialize_project(recipe="git")
    assert "git_clone" in (project / "prefect_lite.yaml").read_text()
    with pytest.raises(ValidationError, match="unknown recipe"):
        initialize_project(recipe="docker", directory=project / "sub")


# ----------------------------------------------------------------------------- API


def test_api_checks_parameters_against_the_stored_schema() -> None:
    schema = parameter_schema(local_etl.fn)
    with get_client(sync_client=True) as client:
        with pytest.raises(
            ValidationError, match="parameter 'limit' of flow 'f' must be an integer"
        ):
            client.create_deployment("f", "d", parameters={"limit": "ten"},
                                     parameter_openapi_schema=schema)  # fmt: skip
        with pytest.raises(ValidationError, match="flow 'f' has no parameter 'limt'"):
            client.create_deployment("f", "d", parameters={"limt": 1},
                                     parameter_openapi_schema=schema)  # fmt: skip
        client.create_deployment(
            "f", "loose", parameters={"limt": 1}, enforce_parameter_schema=False,
            parameter_openapi_schema=schema,
        )  # fmt: skip
        with pytest.raises(ValidationError, match="must not contain '/'"):
            client.create_deployment("f", "a/b")
        with pytest.raises(ValidationError, match="concurrency_limit must be at least 1"):
            client.create_deployment("f", "d", concurrency_limit=0)
        with pytest.raises(ValidationError, match=r"invalid schedule 0\.catchup"):
            client.create_deployment("f", "d", schedules=[{"cron": "* * * * *", "catchup": "x"}])
        with pytest.raises(ValidationError, match="invalid deployment overlap"):
            client.create_deployment("f", "d", overlap="sometimes")
        assert [d.name for d in client.read_deployments()] == ["loose"]


def test_api_reads_by_name_and_id_and_filters_by_flow() -> None:
    with get_client(sync_client=True) as client:
        a = client.create_deployment("alpha", "one")
        client.create_deployment("beta", "two")
        assert client.read_deployment(a.id).full_name == "alpha/one"
        assert [d.full_name for d in client.read_deployments(flow_name="beta")] == ["beta/two"]
        with pytest.raises(ObjectNotFound, match="no deployment named 'alpha/zero'"):
            client.read_deployment_by_name("alpha/zero")
        with pytest.raises(ObjectNotFound, match="no deployment with id"):
            client.read_deployment(uuid.uuid4())
        with pytest.raises(ValidationError, match="expected 'flow-name/deployment-name'"):
            client.read_deployment_by_name("alpha")


def test_rrule_without_a_start_is_anchored_once() -> None:
    with get_client(sync_client=True) as client:
        first = client.create_deployment("f", "r", schedules=[{"rrule": "FREQ=HOURLY"}])
        again = client.create_deployment("f", "r", schedules=[{"rrule": "FREQ=HOURLY"}])
    anchor = first.schedules[0].anchor_date
    assert anchor is not None and (anchor.second, anchor.microsecond) == (0, 0)
    assert again.schedules[0].anchor_date == anchor
