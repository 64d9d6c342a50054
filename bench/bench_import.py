"""Import cost: a fresh ``python -c "import prefect_lite"`` against ``import prefect``.

Each figure is the median wall time of 10 fresh interpreters. The commands run in rounds,
every command once per round and the two sides alternating, so that other load on the
machine lands on both alike; one untimed round first leaves bytecode caches warm.
Interpreter start-up (``python -c pass``) is measured for each interpreter and shown as
its own row, then subtracted to give the cost of the import alone. That ratio should be
close to 1; an editable install (``pip install -e``) is the usual exception, as its import
hook runs at every start-up (and preloads a few stdlib modules the import then reuses).
The last row is the peak RSS of an interpreter that has done the import.

prefect_lite runs under the interpreter running this benchmark, from the repository root;
Prefect under ``bench/.prefect-venv``. Without that venv the baseline column is empty.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench import harness

REPEAT = 10
PEAK_RSS_KIB = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


@dataclass(frozen=True)
class Side:
    python: str
    module: str
    env: Mapping[str, str] | None


def _run(side: Side, code: str) -> str:
    result = subprocess.run(
        [side.python, "-c", code],
        cwd=harness.REPO_DIR,
        env=side.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _median_ms(sides: dict[str, Side]) -> dict[tuple[str, str], float]:
    """Median wall time of ``pass`` ("floor") and of the import ("total") for each side."""
    commands = {
        (name, key): code
        for name, side in sides.items()
        for key, code in (("floor", "pass"), ("total", f"import {side.module}"))
    }
    samples: dict[tuple[str, str], list[float]] = {command: [] for command in commands}
    for round_number in range(REPEAT + 1):
        for (name, key), code in commands.items():
            started = time.perf_counter_ns()
            _run(sides[name], code)
            if round_number:  # round 0 only warms up
                samples[(name, key)].append((time.perf_counter_ns() - started) / 1000)
    return {
        command: harness.Stats.from_samples(values).p50_us / 1000
        for command, values in samples.items()
    }


def main() -> list[harness.Row]:
    sides = {"prefect_lite": Side(sys.executable, "prefect_lite", None)}
    if harness.prefect_available():
        sides["baseline"] = Side(str(harness.PREFECT_PYTHON), "prefect", harness.prefect_env())
    medians = _median_ms(sides)
    figures: dict[str, dict[str, float]] = {}
    for name, side in sides.items():
        floor, total = medians[(name, "floor")], medians[(name, "total")]
        peak_kib = int(_run(side, f"import {side.module}; {PEAK_RSS_KIB}").split()[-1])
        figures[name] = {"floor": floor, "total": total, "import": total - floor}
        figures[name]["rss"] = peak_kib / 1024
    rows = [
        ("start-up floor (python -c pass)", "floor", "ms"),
        ("wall time", "total", "ms"),
        ("wall time minus start-up", "import", "ms"),
        ("peak RSS", "rss", "MiB"),
    ]
    return [
        {
            "name": label,
            "prefect_lite": figures["prefect_lite"][key],
            "baseline": figures["baseline"][key] if "baseline" in figures else None,
            "unit": unit,
        }
        for label, key, unit in rows
    ]


if __name__ == "__main__":
    harness.report(main(), name="import")
