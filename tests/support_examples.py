"""The documented example bodies of each provider (schemas/<slug>/examples), for tests that hold the validators
and the default filling to them."""

from __future__ import annotations

import json
from typing import Any

from simulator.resources import schemas_dir

SLUGS = sorted(p.parent.name for p in schemas_dir().glob("*/examples"))


def documented_bodies(slug: str) -> list[tuple[str, Any]]:
    """(file name, body) for every example of the provider: a recorded exchange's body, or the file itself."""
    found = []
    for path in sorted((schemas_dir() / slug / "examples").rglob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        body = document["body"] if isinstance(document, dict) and "body" in document else document
        found.append((path.name, body))
    return found
