"""``prefect-lite variable ...`` and ``prefect-lite block ...``.

Commands run in this process through ``run_cli`` (the entry point's error handling, real
Redis); one test goes through a real ``python -m prefect_lite`` process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
from pydantic import SecretStr

from prefect_lite.blocks.core import Block
from prefect_lite.blocks.system import JSON, Secret
from prefect_lite.cli import cli
from prefect_lite.cli._errors import run_cli
from prefect_lite.variables import Variable
from tests.helpers import python_env


class Out:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr


Run = Callable[..., Out]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(*args: str) -> Out:
        capsys.readouterr()
        code = run_cli(cli, list(args))
        captured = capsys.readouterr()
        return Out(code, captured.out, captured.err)

    return invoke


def one_line_error(out: Out) -> str:
    assert out.code == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


# -- variables


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("4.5", 4.5),
        ("true", True),
        ("null", None),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ('"quoted"', "quoted"),
        ("plain words", "plain words"),
        ("{not json", "{not json"),
    ],
)
def test_variable_set_parses_json_else_keeps_the_string(run: Run, text: str, value: object) -> None:
    out = run("variable", "set", "v", text)
    assert out.code == 0, out.stderr
    assert Variable.get("v", default="absent") == value


def test_variable_set_get_ls_unset(run: Run) -> None:
    assert run("variable", "set", "region", "eu", "--tag", "geo", "--tag", "prod").code == 0
    assert run("variable", "set", "limits", '{"cpu": 2}').code == 0

    assert run("variable", "get", "region").stdout == "eu\n"
    assert json.loads(run("variable", "get", "limits").stdout) == {"cpu": 2}

    table = run("variable", "ls").stdout
    assert "region" in table and "limits" in table and "geo, prod" in table
    listed = json.loads(run("variable", "ls", "--json").stdout)
    assert [(v["name"], v["value"]) for v in listed] == [("limits", {"cpu": 2}), ("region", "eu")]
    assert [v["name"] for v in json.loads(run("variable", "ls", "--tag", "geo", "--json").stdout)]

    assert run("variable", "unset", "region").code == 0
    assert Variable.get("region") is None


def test_variable_set_of_an_existing_name_needs_overwrite(run: Run) -> None:
    run("variable", "set", "region", "eu")
    line = one_line_error(run("variable", "set", "region", "us"))
    assert "'region' already exists" in line and "overwrite" in line

    assert run("variable", "set", "region", "us", "--overwrite").code == 0
    assert Variable.get("region") == "us"


def test_variable_errors_are_one_line(run: Run) -> None:
    assert "no variable named 'nope'" in one_line_error(run("variable", "get", "nope"))
    assert "no variable named 'nope'" in one_line_error(run("variable", "unset", "nope"))
    assert "invalid variable name 'Bad'" in one_line_error(run("variable", "set", "Bad", "1"))
    assert "limit is 5000" in one_line_error(run("variable", "set", "big", "x" * 6000))


def test_variable_get_of_a_missing_name_via_the_real_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "prefect_lite", "variable", "get", "nope"],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: no variable named 'nope'"
    assert done.stdout == ""


# -- blocks


class Service(Block):
    url: str
    api_key: SecretStr


def test_block_ls_inspect_delete(run: Run) -> None:
    JSON(value={"a": 1}).save("settings")
    Secret(value="hunter2-plain").save("token")

    table = run("block", "ls").stdout
    assert "json/settings" in table and "secret/token" in table
    listed = json.loads(run("block", "ls", "--json").stdout)
    assert [d["name"] for d in listed] == ["settings", "token"]
    only = json.loads(run("block", "ls", "--type", "json", "--json").stdout)
    assert [d["name"] for d in only] == ["settings"]

    inspected = json.loads(run("block", "inspect", "json/settings", "--json").stdout)
    assert inspected["data"] == {"value": {"a": 1}}
    assert "json/settings" in run("block", "inspect", "json/settings").stdout

    assert run("block", "delete", "json/settings").code == 0
    assert "no block 'json/settings'" in one_line_error(run("block", "inspect", "json/settings"))


def test_block_cli_never_shows_secrets(run: Run) -> None:
    Secret(value="hunter2-plain").save("token")
    Service(url="https://api", api_key=SecretStr("hunter2-key")).save("api")

    outputs = [
        run("block", "ls").stdout,
        run("block", "ls", "--json").stdout,
        run("block", "inspect", "secret/token").stdout,
        run("block", "inspect", "secret/token", "--json").stdout,
        run("block", "inspect", "service/api").stdout,
        run("block", "inspect", "service/api", "--json").stdout,
    ]
    for text in outputs:
        assert "hunter2" not in text
    shown = json.loads(outputs[-1])["data"]
    assert shown == {"url": "https://api", "api_key": "********"}
    assert Secret.load("token").get() == "hunter2-plain"


def test_block_errors_are_one_line(run: Run) -> None:
    assert "no block 'json/nope'" in one_line_error(run("block", "inspect", "json/nope"))
    assert "no block 'json/nope'" in one_line_error(run("block", "delete", "json/nope"))
    assert "expected SLUG/NAME" in one_line_error(run("block", "inspect", "nope"))
    assert "expected SLUG/NAME" in one_line_error(run("block", "delete", "/nope"))
    assert "invalid block type slug" in one_line_error(run("block", "inspect", "JSON/x"))


def test_block_type_ls(run: Run) -> None:
    Service(url="u", api_key=SecretStr("k")).save("api")
    listed = json.loads(run("block", "type", "ls", "--json").stdout)
    assert [t["slug"] for t in listed] == ["service"]
    assert "service" in run("block", "type", "ls").stdout
    assert Block.load("service/api") == Service(url="u", api_key=SecretStr("k"))
