"""One module owns every Redis key: no other module spells a key string."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["prefect_lite", "workers", "scheduler"]
KEYS_MODULE = ROOT / "prefect_lite" / "storage" / "keys.py"
# Key segments used in keys.py; a literal like "pl:fr:..." or f"{x}:lease" elsewhere is a bug.
SEGMENT = re.compile(r"(^|:)(fr|tr|sched|lease|lock|idx|hist|logs|idem|input|alias)(:|$)")


def _literal_strings(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
                for v in node.values
            )
            out.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def test_no_key_strings_outside_keys_module() -> None:
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path == KEYS_MODULE:
                continue
            tree = ast.parse(path.read_text())
            for lineno, text in _literal_strings(tree):
                if " " in text or "\n" in text:
                    continue  # prose, messages, Lua source
                if SEGMENT.search(text) and ":" in text:
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {text!r}")
    assert not offenders, "Redis keys built outside storage/keys.py:\n" + "\n".join(offenders)


def test_the_check_catches_a_key_literal() -> None:
    sample = ast.parse('KEY = f"{prefix}:fr:{run_id}"\nOTHER = "pl:lease"\nOK = "a:b"\n')
    found = {t for _, t in _literal_strings(sample) if SEGMENT.search(t)}
    assert {"{}:fr:{}", "pl:lease"} <= found
    assert "a:b" not in found
