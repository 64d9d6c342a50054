"""Import cost: a fresh ``python -c "import prefect_lite"`` against ``import prefect``.

Each figure is the median wall time of 10 fresh interpreters, after one untimed run that
also leaves bytecode caches warm. Interpreter start-up (``python -c pass``) is measured
for each interpreter and shown as its own row (its ratio should be close to 1: a sanity
check of the set-up), then subtracted to give the cost of the import alone. The last row is
the peak RSS of an interpreter that has done the import.

prefect_lite runs under the interpreter running this benchmark, from the repository root;
Prefect under ``bench/.prefect-venv``. Without that venv the baseline column is empty.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

from bench import harness

REPEAT = 10
PEAK_RSS_KIB = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def _run(python: str, code: str, env: Mapping[str, str] | None) -> str:
    result = subprocess.run(
        [python, "-c", code],
        cwd=harness.REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _median_ms(python: str, code: str, env: Mapping[str, str] | None) -> float:
    stats = harness.measure(lambda: _run(python, code, env), repeat=REPEAT, warmup=1)
    return stats.p50_us / 1000


def _import_profile(python: str, module: str, env: Mapping[str, str] | None) -> dict[str, float]:
    floor = _median_ms(python, "pass", env)
    total = _median_ms(python, f"import {module}", env)
    peak_kib = int(_run(python, f"import {module}; {PEAK_RSS_KIB}", env).split()[-1])
    return {"floor": floor, "total": total, "import": total - floor, "rss": peak_kib / 1024}


def main() -> list[harness.Row]:
    lite = _import_profile(sys.executable, "prefect_lite", None)
    base: dict[str, float | None] = dict.fromkeys(lite)
    if harness.prefect_available():
        base.update(_import_profile(str(harness.PREFECT_PYTHON), "prefect", harness.prefect_env()))
    rows = [
        ("start-up floor (python -c pass)", "floor", "ms"),
        ("wall time", "total", "ms"),
        ("wall time minus start-up", "import", "ms"),
        ("peak RSS", "rss", "MiB"),
    ]
    return [
        {"name": name, "prefect_lite": lite[key], "baseline": base[key], "unit": unit}
        for name, key, unit in rows
    ]


if __name__ == "__main__":
    harness.report(main(), name="import")
