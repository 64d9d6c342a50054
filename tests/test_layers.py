"""The import-layer contracts (.importlinter) hold for the real tree and can actually fail.

A contract that matches nothing passes forever, so besides linting the real packages this
builds a tiny tree with one module per layer, checks it passes under the same
configuration, then adds one deliberate violation at a time and expects the matching
contract to break.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".importlinter"

LAYERS = (
    "Layers point down only "
    "(processes > SDK > client > API/orchestration > storage > model > foundation)"
)
SDK_VIA_CLIENT = "The SDK reaches the API handlers and storage only through the client"
REDIS_IN_STORAGE = "Only prefect_lite.storage imports redis and rq"

# A well-layered miniature of the project, one module per layer (write_tree adds any other
# layer .importlinter requires, empty), each importing the one below as the real code does.
CLEAN_TREE = {
    "prefect_lite/__init__.py": (
        '"""Lazy SDK re-exports, typed statically: root -> SDK edges in the graph."""\n'
        "import importlib\n"
        "from typing import TYPE_CHECKING, Any\n"
        "if TYPE_CHECKING:\n"
        "    from prefect_lite.flows import flow\n"
        "def __getattr__(name: str) -> Any:\n"
        "    return getattr(importlib.import_module('prefect_lite.flows'), name)\n"
    ),
    "prefect_lite/settings.py": "",
    "prefect_lite/exceptions.py": "",
    "prefect_lite/_time.py": "from prefect_lite import exceptions\n",
    "prefect_lite/serializers.py": "",
    # `from <root> import <submodule>` imports the submodule, not the root.
    "prefect_lite/states.py": "from prefect_lite import _time\n",
    "prefect_lite/schemas.py": "from prefect_lite.states import State\n",
    "prefect_lite/storage/__init__.py": "",
    "prefect_lite/storage/runs.py": (
        "import redis\nimport rq\nfrom prefect_lite import schemas, settings\n"
    ),
    "prefect_lite/api/__init__.py": "from prefect_lite.storage import runs\n",
    "prefect_lite/client/__init__.py": "from prefect_lite import api\n",
    "prefect_lite/flows.py": "from prefect_lite.client import get_client\n",
    "prefect_lite/tasks.py": "from prefect_lite import flows\n",
    "prefect_lite/cli/__init__.py": "import workers\nfrom prefect_lite import flows\n",
    "workers/__init__.py": "from prefect_lite.storage import runs\nfrom prefect_lite import api\n",
    "scheduler/__init__.py": "from prefect_lite.storage import runs\n",
}

# (files to add or overwrite, broken contract, text the report must contain)
VIOLATIONS = {
    "storage imports the client": (
        {"prefect_lite/storage/bad.py": "from prefect_lite import client\n"},
        LAYERS,
        "prefect_lite.storage is not allowed to import prefect_lite.client",
    ),
    "model imports storage through an unlisted module": (
        {
            "prefect_lite/helpers.py": "from prefect_lite.storage import runs\n",
            "prefect_lite/states.py": "from prefect_lite import helpers\n",
        },
        LAYERS,
        "prefect_lite.states is not allowed to import prefect_lite.storage",
    ),
    "foundation imports the model": (
        {"prefect_lite/settings.py": "from prefect_lite.states import State\n"},
        LAYERS,
        "prefect_lite.settings is not allowed to import prefect_lite.states",
    ),
    "storage imports the package root": (
        {"prefect_lite/storage/bad.py": "import prefect_lite\n"},
        LAYERS,
        "prefect_lite.storage is not allowed to import prefect_lite.flows",
    ),
    "a process is imported by the SDK": (
        {"prefect_lite/tasks.py": "import scheduler\n"},
        LAYERS,
        "prefect_lite.tasks is not allowed to import scheduler",
    ),
    "the SDK bypasses the client to reach storage": (
        {"prefect_lite/tasks.py": "from prefect_lite.storage import runs\n"},
        SDK_VIA_CLIENT,
        "prefect_lite.tasks -> prefect_lite.storage.runs",
    ),
    "the SDK calls an API handler directly": (
        {"prefect_lite/flows.py": "from prefect_lite import api\n"},
        SDK_VIA_CLIENT,
        "prefect_lite.flows -> prefect_lite.api",
    ),
    "the model imports redis": (
        {"prefect_lite/states.py": "import redis\n"},
        REDIS_IN_STORAGE,
        "prefect_lite.states -> redis",
    ),
    "a worker imports rq itself": (
        {"workers/claim.py": "from rq import Queue\n"},
        REDIS_IN_STORAGE,
        "workers.claim -> rq",
    ),
}


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports from this interpreter's environment on the packages under ``cwd``."""
    script = Path(sys.executable).with_name("lint-imports")
    command = str(script) if script.exists() else shutil.which("lint-imports")
    assert command, "lint-imports is not installed (pip install -e '.[dev]')"
    env = {**os.environ, "PYTHONPATH": str(cwd), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [command, "--no-cache", "--no-logo", "--config", str(cwd / ".importlinter")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def required_layer_modules() -> set[str]:
    """The layers .importlinter requires to exist (those not in parentheses)."""
    config = configparser.ConfigParser()
    config.read(CONFIG)
    names = set()
    for line in config["importlinter:contract:layers"]["layers"].split("\n"):
        names.update(name.strip() for name in re.split(r"[:|]", line) if name.strip())
    return {name for name in names if not name.startswith("(")}


def write_tree(root: Path, files: dict[str, str]) -> None:
    """The miniature plus ``files``; required layers it lacks become empty modules."""
    shutil.copyfile(CONFIG, root / ".importlinter")
    files = dict(files)
    for module in required_layer_modules():
        path = module.replace(".", "/")
        if f"{path}.py" not in files and f"{path}/__init__.py" not in files:
            files[f"{path}.py"] = ""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_real_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    flat = " ".join(result.stdout.split())
    for contract in (LAYERS, SDK_VIA_CLIENT, REDIS_IN_STORAGE):
        assert f"{contract} KEPT" in flat, result.stdout


def test_clean_miniature_keeps_every_contract(tmp_path: Path) -> None:
    write_tree(tmp_path, CLEAN_TREE)
    result = lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_violation_breaks_its_contract(tmp_path: Path, case: str) -> None:
    files, contract, evidence = VIOLATIONS[case]
    write_tree(tmp_path, {**CLEAN_TREE, **files})
    result = lint_imports(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    flat = " ".join(output.split())
    assert f"{contract} BROKEN" in flat, output
    assert evidence in flat, output
