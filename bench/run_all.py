"""Run the benchmarks and print one table: ``python bench/run_all.py [NAME ...]``.

Every ``bench/bench_<name>.py`` module exposes ``main() -> list[dict]`` returning harness
rows. With no NAME all of them run, in name order; ``--list`` shows what there is. Each
module's rows are also written to ``bench/results/<name>.json`` and the whole run to
``bench/results/all.json`` (only when every benchmark ran).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

PREFIX = "bench_"


def discover() -> list[str]:
    """Benchmark names (``bench_<name>.py`` -> ``<name>``), sorted."""
    return sorted(path.stem[len(PREFIX) :] for path in harness.BENCH_DIR.glob(f"{PREFIX}*.py"))


def run_one(name: str) -> list[harness.Row]:
    module = importlib.import_module(f"bench.{PREFIX}{name}")
    rows: list[harness.Row] = module.main()
    harness.write_json(name, rows)
    return [{**row, "benchmark": name, "name": f"{name}: {row['name']}"} for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    options = parser.parse_args(argv)

    available = discover()
    if options.list:
        print("\n".join(available))
        return 0
    wanted = [name.removeprefix(PREFIX).removesuffix(".py") for name in options.names]
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(available)})")
    if not harness.prefect_available():
        print("note: no Prefect venv, so no baselines: run bench/setup_prefect.sh")

    rows: list[harness.Row] = []
    failed: list[str] = []
    for name in wanted or available:
        print(f"--- {name}", flush=True)
        started = time.perf_counter()
        try:
            rows.extend(run_one(name))
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"    ({time.perf_counter() - started:.1f}s)", flush=True)

    print()
    harness.report(rows, name=None if wanted or failed else "all")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
