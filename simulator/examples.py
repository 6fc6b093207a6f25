"""Documented examples shipped with each provider's schemas (`schemas/<slug>/examples/<kind>/*.json`).

Examples are data: the project's own tests run them, and the contract kit replays them. Very long
strings are stored as `{"$repeat": "a", "times": 50001}` placeholders and expanded when loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulator.resources import schemas_dir


def expand(value: Any) -> Any:
    """Replace every `{"$repeat": s, "times": n}` object by `s * n`."""
    if isinstance(value, dict):
        if set(value) == {"$repeat", "times"}:
            return value["$repeat"] * value["times"]
        return {key: expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item) for item in value]
    return value


def example_files(slug: str, kind: str) -> list[Path]:
    return sorted((schemas_dir() / slug / "examples" / kind).glob("*.json"))


def load_example(path: Path) -> Any:
    return expand(json.loads(path.read_text(encoding="utf-8")))
