"""Signed pickles: what the result-signing seal adds to writing and reading a result.

Rows, for a 1 MB and a 1 KB result (a ``bytes`` payload, so its pickle is that size):
- ``pickle dumps`` / ``pickle loads``: ``PickleSerializer`` as results use it (cloudpickle,
  HMAC-SHA256 seal, base64; reading checks the seal before unpickling), against the plain
  unsigned path it replaced (cloudpickle + base64, ``pickle.loads`` of the decoded blob);
- ``seal cost``: the HMAC-SHA256 alone over the payload (sign or verify: the same work).

No baseline from Prefect here: Prefect does not sign results; the baseline column is the
same serializer without the seal, measured in the same run.
"""

from __future__ import annotations

import base64
import os
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

SIZES = {"1 MB": 1 << 20, "1 KB": 1 << 10}
REPEAT = {"1 MB": 300, "1 KB": 5000}


def _rows(label: str, size: int) -> list[harness.Row]:
    import cloudpickle

    from prefect_lite.serializers import PickleSerializer
    from prefect_lite.signing import signing_key

    value = os.urandom(size)
    serializer = PickleSerializer()
    raw = cloudpickle.dumps(value)
    signed = serializer.dumps(value)
    plain = base64.b64encode(raw)
    assert serializer.loads(signed) == value
    key = signing_key()
    repeat = REPEAT[label]

    def plain_loads() -> object:
        return pickle.loads(base64.b64decode(plain))

    ours_dumps = harness.measure(lambda: serializer.dumps(value), repeat=repeat)
    base_dumps = harness.measure(lambda: base64.b64encode(cloudpickle.dumps(value)), repeat=repeat)
    ours_loads = harness.measure(lambda: serializer.loads(signed), repeat=repeat)
    base_loads = harness.measure(plain_loads, repeat=repeat)
    seal = harness.measure(lambda: key.mac("pickle", raw), repeat=repeat)
    return [
        {
            "name": f"pickle dumps {label}, signed vs unsigned (p50)",
            "prefect_lite": ours_dumps.p50_us,
            "baseline": base_dumps.p50_us,
            "unit": "us",
            "signed": ours_dumps.as_dict(),
            "unsigned": base_dumps.as_dict(),
        },
        {
            "name": f"pickle loads {label}, verified vs unverified (p50)",
            "prefect_lite": ours_loads.p50_us,
            "baseline": base_loads.p50_us,
            "unit": "us",
            "verified": ours_loads.as_dict(),
            "unverified": base_loads.as_dict(),
        },
        {
            "name": f"HMAC-SHA256 seal alone, {label} (p50)",
            "prefect_lite": seal.p50_us,
            "baseline": None,
            "unit": "us",
            "seal": seal.as_dict(),
        },
    ]


def main() -> list[harness.Row]:
    home = Path(tempfile.mkdtemp(prefix="bench-signing-"))
    os.environ["PREFECT_LITE_HOME"] = str(home)
    os.environ.pop("PREFECT_LITE_RESULT_SIGNING_KEY", None)
    from prefect_lite.settings import reload_settings

    reload_settings()
    try:
        return [row for label, size in SIZES.items() for row in _rows(label, size)]
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    harness.report(main(), "signing")
