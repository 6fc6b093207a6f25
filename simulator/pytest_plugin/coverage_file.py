"""Where `--nanobanana-coverage-json` writes its report, and the guard that keeps it from destroying a file.

The report only ever replaces a previous report of its own kind (recognised by its `format` key): a test
file, a folder, or any other file named by mistake stops the run before a test has run, saying why.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

FORMAT = "nanobanana-sim contract coverage"
OPTION = "--nanobanana-coverage-json"
_LARGEST_REPORT = 10_000_000  # bytes; anything larger is not one of ours, and is not read whole


class CoverageFileError(ValueError):
    """The path cannot take the report; the message says why and what to write instead."""


def _is_report(path: Path) -> bool:
    try:
        if path.stat().st_size > _LARGEST_REPORT:
            return False
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(document, dict) and document.get("format") == FORMAT


def checked(name: str) -> Path:
    """The report's path, if writing it there can only create a file or replace an earlier report."""
    path = Path(name)
    if path.is_dir():
        raise CoverageFileError(f"{OPTION}: {name} is a folder; name a file in it, e.g. "
                                f"{OPTION}={path / 'coverage.json'}")
    if path.suffix.lower() != ".json":
        raise CoverageFileError(f"{OPTION}: the report is JSON and its file name must end in .json, not {name!r}")
    if not path.parent.is_dir():
        raise CoverageFileError(f"{OPTION}: the folder {path.parent} does not exist")
    if path.exists() and not _is_report(path):
        raise CoverageFileError(f"{OPTION}: refusing to overwrite {name}: it is not a coverage report written by "
                                "nanobanana-sim; name another file, or remove it yourself")
    return path


def write(path: Path, report: dict[str, Any]) -> None:
    """Write the report beside its final name and move it into place, after checking the place once more."""
    checked(str(path))
    text = json.dumps({"format": FORMAT, **report}, indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
