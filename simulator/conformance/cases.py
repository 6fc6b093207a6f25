"""Conformance case files (`contracts/providers/<slug>.yaml`): what each simulated provider must answer.

The format is `schemas/_formats/conformance-cases.json` (described for people in `contracts/README.md`); a
file is checked against it when loaded, so a typo in a key stops the load with the file and the place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator import data_formats
from simulator.resources import contracts_dir

FORMAT = "conformance-cases"


class CaseFileError(ValueError):
    """A case file that does not follow the format (a typo in a key, a missing request): a bug in the data."""


@dataclass(frozen=True)
class Case:
    provider: str
    name: str
    doc: str
    spec: Mapping[str, Any]
    source: Path

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.name}"

    def steps(self) -> list[Mapping[str, Any]]:
        """The case as steps: a single-request case is one `request` step."""
        if "steps" in self.spec:
            return list(self.spec["steps"])
        return [{key: self.spec[key] for key in ("request", "expect", "save") if key in self.spec}]

    def operations(self) -> set[str]:
        """The routes this case asserts it reached (`expect.operation` of its steps)."""
        found = set()
        for step in self.steps():
            expected = (step.get("expect") or {}).get("operation")
            if isinstance(expected, str):
                found.add(expected)
        return found


def providers_dir() -> Path:
    return contracts_dir() / "providers"


def load_cases(providers: Iterable[str] | None = None, folder: Path | None = None) -> list[Case]:
    """Every case of `contracts/providers/<slug>.yaml` (or of `folder`), in file order."""
    folder = folder or providers_dir()
    wanted = set(providers) if providers is not None else None
    cases: list[Case] = []
    for path in sorted(folder.glob("*.yaml")):
        if wanted is not None and path.stem not in wanted:
            continue
        cases += load_file(path)
    return cases


def load_file(path: Path) -> list[Case]:
    document = data_formats.load_yaml(path.read_text(encoding="utf-8"), FORMAT, str(path), CaseFileError)
    slug = document["provider"]
    if slug != path.stem:
        raise CaseFileError(f"{path}: provider {slug!r} does not match the file name")
    cases: list[Case] = []
    for spec in document["cases"]:
        if any(case.name == spec["name"] for case in cases):
            raise CaseFileError(f"{path}: two cases are named {spec['name']!r}")
        cases.append(Case(slug, spec["name"], spec["doc"], spec, path))
    return cases


def iter_operations(cases: Iterable[Case]) -> Iterator[tuple[str, str]]:
    """(provider, operation) for every route a case asserts it reached."""
    for case in cases:
        for operation in case.operations():
            yield case.provider, operation
