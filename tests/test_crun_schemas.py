"""CRun schemas (schemas/crun) and data card against the documented examples, without a server.

Sources: seed 003 (docs.crun.ai "Generate images using google nano banana") and the CRun dossier
(TaskInfo, estimate-credits and nano-banana-pro OpenAPI pages). Examples live in schemas/crun/examples/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulator.examples import expand
from simulator.images import aspect_ratios, pixel_size
from simulator.options import ProviderOptions, provider_data
from simulator.providers.crun.errors import ErrorWriter, pydantic_choices
from simulator.resources import schemas_dir
from simulator.validation import BASE_URI, SchemaSet, schema_set

ROOT = schemas_dir() / "crun"
EXAMPLES = ROOT / "examples"
CARD = provider_data("crun")

RESPONSE_SCHEMAS = {
    "doc-balance-200.json": "response/balance",
    "doc-estimate-200.json": "response/estimate-credits",
    "doc-estimate-422.json": "response/validation-error",
    "doc-nbpro-422.json": "response/validation-error",
    "doc-nbpro-create-200.json": "response/create-task",
    "doc-taskinfo-401.json": "response/error",
    "doc-taskinfo-403.json": "response/error",
    "doc-taskinfo-404.json": "response/error",
    "dossier-4.4-create-200.json": "response/create-task",
    "dossier-5.1-failed.json": "response/task-info",
    "dossier-5.1-running.json": "response/task-info",
    "dossier-5.1-success.json": "response/task-info",
    "dossier-7-callback.json": "response/callback",
}


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return schema_set("crun")


def examples(kind: str) -> list[Path]:
    return sorted((EXAMPLES / kind).glob("*.json"))


def test_every_schema_file_is_draft_2020_12_with_its_own_id(schemas: SchemaSet) -> None:
    assert schemas.names()
    for name in schemas.names():
        document = schemas.document(name)
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert document["$id"] == f"{BASE_URI}crun/{name}.json"


@pytest.mark.parametrize("path", examples("requests"), ids=lambda p: p.stem)
def test_documented_requests_are_valid_for_create_and_estimate(schemas: SchemaSet, path: Path) -> None:
    body = json.loads(path.read_text())
    assert schemas.validate("request/create-task", body).violations == []
    assert schemas.validate("request/estimate-credits", body).violations == []


@pytest.mark.parametrize("name", sorted(RESPONSE_SCHEMAS), ids=lambda n: n.removesuffix(".json"))
def test_documented_responses_match_their_schema(schemas: SchemaSet, name: str) -> None:
    body = json.loads((EXAMPLES / "responses" / name).read_text())
    assert schemas.validate(RESPONSE_SCHEMAS[name], body).violations == []
    if RESPONSE_SCHEMAS[name] != "response/callback":
        assert schemas.is_valid("response/envelope", body)


def test_every_response_example_is_mapped() -> None:
    assert {p.name for p in examples("responses")} == set(RESPONSE_SCHEMAS)


@pytest.mark.parametrize("path", examples("invalid"), ids=lambda p: p.stem)
def test_documented_mistakes_give_crun_worded_errors(schemas: SchemaSet, path: Path) -> None:
    case = json.loads(path.read_text())
    body = expand(case["body"])
    model = body.get("model") if body.get("model") in CARD["models"] else None
    writer = ErrorWriter(CARD)
    violations = schemas.validate("request/create-task", body).violations
    assert [writer.describe(v, model) for v in violations] == case["expect"]["errors"]


def test_estimate_accepts_extra_top_level_fields_but_create_does_not(schemas: SchemaSet) -> None:
    body = {"model": "google/nano-banana", "input": {"prompt": "a cat"}, "client_ref": "x"}
    assert schemas.is_valid("request/estimate-credits", body)
    [violation] = schemas.validate("request/create-task", body).violations
    assert (violation.path, violation.rule) == (("client_ref",), "additionalProperties")


@pytest.mark.parametrize("model", ["google/nano-banana-v2", "google/nano-banana-pro-v2", "google/nano-banana-2-v2"])
def test_v2_channels_accept_and_ignore_output_format(schemas: SchemaSet, model: str) -> None:
    body = {"model": model, "input": {"prompt": "a cat", "output_format": "webp"}}
    assert schemas.is_valid("request/create-task", body)


def test_pydantic_choice_lists() -> None:
    assert pydantic_choices(["png"]) == "'png'"
    assert pydantic_choices(["png", "jpg"]) == "'png' or 'jpg'"
    assert pydantic_choices(["1K", "2K", "4K"]) == "'1K', '2K' or '4K'"


# -- the data card agrees with the schemas ------------------------------------------------------------


def _input_schema(schemas: SchemaSet, model: str) -> dict[str, Any]:
    target = schemas.document("request/create-task")["$defs"]["Request"]["discriminator"]["mapping"][model]
    task = schemas.document("request/create-task")["$defs"][target.removeprefix("#/$defs/")]
    name = task["properties"]["input"]["$ref"].rsplit("/", 1)[-1]
    return schemas.document("request/nano-banana-input")["$defs"][name]


def _enum(schemas: SchemaSet, prop: dict[str, Any]) -> list[str]:
    if "$ref" in prop:
        return list(schemas.document("request/nano-banana-input")["$defs"][prop["$ref"].rsplit("/", 1)[-1]]["enum"])
    return list(prop["enum"])


@pytest.mark.parametrize("model", sorted(CARD["models"]))
def test_every_model_has_a_price_runtime_and_size_for_each_value_its_schema_allows(
    schemas: SchemaSet, model: str
) -> None:
    card = CARD["models"][model]
    properties = _input_schema(schemas, model)["properties"]
    tiers = _enum(schemas, properties["resolution"])
    assert sorted(card["credits"]) == sorted(tiers) == sorted(card["seconds"])
    for tier in tiers:
        for ratio in _enum(schemas, properties["aspect_ratio"]):
            if ratio != "auto":
                assert pixel_size(card["sizeFamily"], ratio, tier)
        assert CARD["defaults"]["aspectRatio"] in aspect_ratios(card["sizeFamily"], tier)
    assert model.endswith("-v2") == (card["fixedOutputFormat"] is not None)
    assert ("output_format" in properties) and ("enum" in properties["output_format"]) != model.endswith("-v2")


def test_create_and_estimate_dispatch_the_same_models(schemas: SchemaSet) -> None:
    def mapping(name: str) -> set[str]:
        return set(schemas.document(name)["$defs"]["Request"]["discriminator"]["mapping"])

    assert mapping("request/create-task") == mapping("request/estimate-credits") == set(CARD["models"])


def test_every_option_has_a_default_and_a_doc() -> None:
    options = ProviderOptions("crun").describe()
    assert options
    for name, spec in options.items():
        assert spec["doc"], name
        assert "choices" not in spec or spec["default"] in spec["choices"], name
