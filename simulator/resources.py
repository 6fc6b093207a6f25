"""Where the shipped data lives: inside the wheel, or beside the package in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import simulator

_PACKAGE_DIR = Path(simulator.__file__).resolve().parent


def _find(name: str) -> Path:
    # An installed wheel carries the data under simulator/_data; a checkout keeps it at the repo root.
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"nanobanana-sim data folder {name!r} is missing from this installation")


@cache
def schemas_dir() -> Path:
    return _find("schemas")


@cache
def contracts_dir() -> Path:
    return _find("contracts")
