"""The flow the chaos suite runs (loaded by workers from this file).

Each attempt of a run appends ``start``, a ``tick`` every 0.1 s and ``end`` lines (with
its pid and the time) to ``{marks}/{run id}.log``, so the suite can tell whether two
processes ran one run's body at once and whether a body finished.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prefect_lite import flow, runtime


def _line(marks: str, what: str) -> None:
    path = Path(marks, f"{runtime.flow_run.id}.log")
    with path.open("a") as out:  # O_APPEND: lines of concurrent writers never mix
        out.write(f"{what} {os.getpid()} {time.time():.3f}\n")


def _crashed(flow: Any, flow_run: Any, state: Any) -> None:
    marks = flow_run.parameters.get("marks")
    if marks:
        with Path(marks, f"{flow_run.id}.log").open("a") as out:
            out.write(f"crashhook {os.getpid()} {time.time():.3f}\n")


@flow(retries=1, on_crashed=[_crashed])
def chaos_body(seconds: float, marks: str) -> str:
    _line(marks, "start")
    until = time.time() + seconds
    while time.time() < until:
        time.sleep(0.1)
        _line(marks, "tick")
    _line(marks, "end")
    return "done"
