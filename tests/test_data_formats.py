"""The project's own data formats (schemas/_formats/): every shipped file follows its format, and a typo in a
key, at any depth, is refused with the file and the place."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from simulator import data_formats
from simulator.providers import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
FORMATS = sorted(path.stem for path in (ROOT / "schemas" / "_formats").glob("*.json"))
SHIPPED = [
    *(("provider-card", path) for path in sorted(ROOT.glob("schemas/[a-z]*/provider.json"))),
    *(("conformance-cases", path) for path in sorted((ROOT / "contracts" / "providers").glob("*.yaml"))),
    *(("scenario", path) for path in sorted((ROOT / "contracts" / "scenarios").glob("*.yaml"))),
    *(("rehearsal", path) for path in sorted((ROOT / "contracts" / "rehearsals").glob("*.yaml"))),
]


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_is_a_valid_json_schema(name: str) -> None:
    schema = json.loads((ROOT / "schemas" / "_formats" / f"{name}.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/_formats/{name}.json") and schema["description"]


@pytest.mark.parametrize(("name", "path"), SHIPPED, ids=[f"{n}:{p.parent.name}/{p.name}" for n, p in SHIPPED])
def test_every_shipped_file_follows_its_format(name: str, path: Path) -> None:
    assert data_formats.problems(_read(path), name) == []


def test_every_provider_has_a_card() -> None:
    assert set(REGISTRY) <= {path.parent.name for name, path in SHIPPED if name == "provider-card"}


def _with(document: Any, path: list[Any], key: str, value: Any) -> Any:
    changed = copy.deepcopy(document)
    target = changed
    for part in path:
        target = target[part]
    target[key] = value
    return changed


@pytest.mark.parametrize(("where", "key", "reported"), [
    ([], "hostz", "$: unknown key(s) ['hostz']"),
    (["operations", "GetWorkflow"], "respones", "operations.GetWorkflow: unknown key(s) ['respones']"),
    (["options", "url_ttl_seconds"], "defualt", "options.url_ttl_seconds: unknown key(s) ['defualt']"),
    (["clientGuidance", "poll"], "minSecs", "clientGuidance.poll: unknown key(s) ['minSecs']"),
    (["documentedRequest"], "header", "documentedRequest: unknown key(s) ['header']"),
])
def test_a_typo_in_a_provider_card_is_refused_where_it_is(where: list[str], key: str, reported: str) -> None:
    card = _with(_read(ROOT / "schemas" / "civitai" / "provider.json"), where, key, 1)
    with pytest.raises(data_formats.FormatError) as caught:
        data_formats.check(card, "provider-card", "civitai/provider.json")
    assert str(caught.value).startswith(f"civitai/provider.json: not a valid provider-card file: {reported}")
