"""Measuring prefect_lite against real Prefect in the same run.

Standard library only, so the same module serves both sides: benchmarks import it as
``bench.harness`` and baseline scripts, which run under Prefect's own interpreter
(``bench/.prefect-venv``, made by ``bench/setup_prefect.sh``), import it as ``harness``.

Figures are only compared within one run on one machine: ``report`` prints each result
next to its baseline and the ratio between them, never an absolute target.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PREFECT_VENV = BENCH_DIR / ".prefect-venv"
PREFECT_PYTHON = PREFECT_VENV / "bin" / "python"
RESULTS_DIR = BENCH_DIR / "results"

Row = dict[str, Any]
"""One result: ``name``, ``prefect_lite``, ``baseline`` (None if not measured), ``unit``;
``ratio`` is filled in by ``report``; any other keys are kept in the JSON file."""


class PrefectVenvMissing(RuntimeError):
    """The baseline interpreter is not there: ``bash bench/setup_prefect.sh`` makes it."""


class BaselineScriptFailed(RuntimeError):
    """A script run under Prefect's interpreter exited non-zero or printed no JSON line."""


@dataclass(frozen=True)
class Stats:
    """Per-operation timings in microseconds over ``n`` measured calls."""

    n: int
    mean_us: float
    min_us: float
    p50_us: float
    p90_us: float
    p99_us: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stats:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    @classmethod
    def from_samples(cls, samples_us: Sequence[float]) -> Stats:
        if not samples_us:
            raise ValueError("no samples")
        ordered = sorted(samples_us)
        return cls(
            n=len(ordered),
            mean_us=statistics.fmean(ordered),
            min_us=ordered[0],
            p50_us=percentile(ordered, 50),
            p90_us=percentile(ordered, 90),
            p99_us=percentile(ordered, 99),
        )


def percentile(ordered: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of sorted ``ordered``, linearly interpolated between ranks."""
    if not ordered:
        raise ValueError("no samples")
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def measure(fn: Callable[[], object], *, repeat: int, warmup: int | None = None) -> Stats:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timing each call.

    ``warmup`` defaults to a tenth of ``repeat`` (at least one call): it fills caches, opens
    connections and loads scripts so they are not billed to the first sample. The garbage
    collector stays on, as it would be in real use.
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    for _ in range(max(1, repeat // 10) if warmup is None else warmup):
        fn()
    clock = time.perf_counter_ns
    samples: list[float] = []
    for _ in range(repeat):
        start = clock()
        fn()
        samples.append((clock() - start) / 1000)
    return Stats.from_samples(samples)


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def emit(result: Mapping[str, Any]) -> None:
    """Print ``result`` as the one JSON line a baseline script hands back to the harness."""
    print(json.dumps(result, default=_jsonable), flush=True)


def prefect_available() -> bool:
    return PREFECT_PYTHON.exists()


def prefect_version() -> str | None:
    """The Prefect version installed in the baseline venv, or None if there is none."""
    if not prefect_available():
        return None
    result = subprocess.run(
        [
            str(PREFECT_PYTHON),
            "-c",
            "import importlib.metadata as m; print(m.version('prefect'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def prefect_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Prefect's interpreter: this one, plus a private PREFECT_HOME.

    Prefect keeps its home (settings, SQLite database) inside the venv directory unless
    the environment or ``extra`` sets ``PREFECT_HOME``. PYTHONPATH is the bench directory,
    for ``import harness``, and never this project's packages.
    """
    return {
        "PREFECT_HOME": str(PREFECT_VENV / "prefect-home"),
        "DO_NOT_TRACK": "1",
        **os.environ,
        "PYTHONPATH": str(BENCH_DIR),
        **(extra or {}),
    }


def run_in_prefect_venv(
    script_path: str | os.PathLike[str],
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Run a script under Prefect's interpreter and return the JSON object it printed.

    The script prints one JSON line (``harness.emit``); other output, such as Prefect's own
    logging, may precede it. ``env`` adds to ``prefect_env()``.
    """
    if not prefect_available():
        raise PrefectVenvMissing(
            f"Prefect's virtualenv is missing ({PREFECT_VENV.relative_to(REPO_DIR)}): "
            "run bench/setup_prefect.sh"
        )
    script = Path(script_path).resolve()
    result = subprocess.run(
        [str(PREFECT_PYTHON), str(script), *args],
        capture_output=True,
        text=True,
        env=prefect_env(env),
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise BaselineScriptFailed(
            f"{script.name} exited with status {result.returncode}:\n{_tail(result.stderr)}"
        )
    for line in reversed(result.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                return parsed
    raise BaselineScriptFailed(
        f"{script.name} printed no JSON object line:\n{_tail(result.stdout + result.stderr)}"
    )


def ratio(prefect_lite: float | None, baseline: float | None) -> float | None:
    """prefect_lite / baseline: below 1 means prefect_lite takes less (time, memory)."""
    if prefect_lite is None or baseline is None or baseline == 0:
        return None
    return prefect_lite / baseline


def format_table(rows: Sequence[Row]) -> str:
    """An aligned text table: name, prefect_lite, baseline, ratio."""
    header = ("name", "prefect_lite", "baseline", "ratio")
    lines = [header]
    for row in rows:
        unit = row.get("unit", "")
        lines.append(
            (
                str(row["name"]),
                _format_value(row.get("prefect_lite"), unit),
                _format_value(row.get("baseline"), unit),
                _format_ratio(_row_ratio(row)),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = []
    for number, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        rendered.append("  ".join(cells).rstrip())
        if number == 0:
            rendered.append("  ".join("-" * width for width in widths))
    rendered.append("ratio = prefect_lite / baseline (same run); below 1 = prefect_lite is lower")
    return "\n".join(rendered)


def write_json(name: str, rows: Sequence[Row]) -> Path:
    """Write ``rows`` and a description of the machine to ``bench/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "prefect_version": prefect_version(),
        "rows": [{**row, "ratio": _row_ratio(row)} for row in rows],
    }
    path.write_text(json.dumps(document, indent=2, default=_jsonable) + "\n")
    return path


def report(rows: Sequence[Row], name: str | None = None) -> Path | None:
    """Print ``rows`` as a table; with a ``name``, also write ``bench/results/<name>.json``."""
    print(format_table(rows))
    if name is None:
        return None
    path = write_json(name, rows)
    print(f"(written to {path.relative_to(REPO_DIR)})")
    return path


def _row_ratio(row: Row) -> float | None:
    return ratio(row.get("prefect_lite"), row.get("baseline"))


def _format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def _format_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}x"


def _jsonable(value: object) -> object:
    if isinstance(value, Stats):
        return value.as_dict()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
