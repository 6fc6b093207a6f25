"""Google's own API (schemas/gemini): the schemas, provider.json and the documented examples agree.

Sources: the Gemini dossier (Google's docs, the three SDKs' source, real wire captures). The examples in
schemas/gemini/examples/ are wrappers `{description, doc, schema, body[, expect]}`: requests and responses
must validate, each invalid request must give exactly the violation it names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from support_schemas import schema_references

from simulator.examples import load_example
from simulator.faults.errors import DEFAULT_ERRORS
from simulator.images.sizes import pixel_size
from simulator.operations import operations
from simulator.options import ProviderOptions, provider_data
from simulator.resources import schemas_dir
from simulator.validation import BASE_URI, dotted_path, schema_set

ROOT = schemas_dir() / "gemini"
EXAMPLES = ROOT / "examples"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
CANONICAL_CODES = {
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED",
}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _schema_files(folder: str = "") -> list[Path]:
    paths = sorted(p for p in (ROOT / folder).rglob("*.json") if "examples" not in p.relative_to(ROOT).parts)
    return [p for p in paths if isinstance(doc := _load(p), dict) and "$schema" in doc]


def _examples(kind: str) -> list[Path]:
    return sorted((EXAMPLES / kind).glob("*.json"))


def _violations(name: str, instance: Any) -> list[tuple[str, str]]:
    return [(dotted_path(v.path), v.rule) for v in schema_set("gemini").validate(name, instance).violations]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


# --------------------------------------------------------------------------- the schema files


def test_the_loader_reads_the_folder() -> None:
    assert set(schema_set("gemini").names()) == {
        f"{p.parent.name}/{p.stem}" for p in _schema_files()
    }


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_schema_file_is_valid_draft_2020_12(path: Path) -> None:
    document = _load(path)
    assert document["$schema"] == DRAFT_2020_12
    assert document["$id"] == f"{BASE_URI}gemini/{path.relative_to(ROOT).as_posix()}"
    Draft202012Validator.check_schema(document)


def test_every_reference_resolves_and_cross_file_ones_target_defs() -> None:
    documents = [_load(p) for p in _schema_files()]
    registry: Registry[Any] = Registry().with_resources(
        (d["$id"], Resource.from_contents(d, default_specification=DRAFT202012)) for d in documents
    )
    for document in documents:
        resolver = registry.resolver(base_uri=document["$id"])
        for reference in schema_references(document):
            resolver.lookup(reference)  # raises if the target is missing
            target, _, fragment = reference.partition("#")
            if target:  # a whole other document would lose the `discriminator` keyword below it
                assert fragment.startswith("/$defs/"), f"{document['$id']}: {reference}"


def _objects(node: Any, pointer: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema object with `properties`, with its JSON pointer, outside free-form members."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict) and not node.get("x-free-form"):
            found.append((pointer, node))
        for key, value in node.items():
            found.extend(_objects(value, f"{pointer}/{key}"))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(_objects(item, f"{pointer}/{index}"))
    return found


PROTO_JSON_REQUESTS = [p for p in _schema_files("request") if p.stem != "predict"]  # :predict takes Struct values


@pytest.mark.parametrize("path", PROTO_JSON_REQUESTS, ids=_ids(PROTO_JSON_REQUESTS))
def test_every_member_has_its_snake_case_twin(path: Path) -> None:
    """Proto3 JSON accepts the lowerCamel name and the proto field name: each twin points at its sibling."""
    for pointer, schema in _objects(_load(path)):
        properties = schema["properties"]
        for name, sub in properties.items():
            if "x-alias-of" in sub:
                camel = sub["x-alias-of"]
                assert _snake(camel) == name and camel in properties, f"{path.name}{pointer}: {name}"
                assert sub == {"$ref": f"#{pointer}/properties/{camel}", "x-alias-of": camel}
            elif _snake(name) != name:
                assert properties.get(_snake(name), {}).get("x-alias-of") == name, f"{path.name}{pointer}: {name}"
            else:
                assert "_" not in name or name.startswith("@"), f"{path.name}{pointer}: snake-only member {name}"
        for name in schema.get("required", []):
            assert _snake(name) == name, f"{path.name}{pointer}: required {name} needs both spellings (anyOf)"


@pytest.mark.parametrize("path", _schema_files("response"), ids=_ids(_schema_files("response")))
def test_answers_use_lower_camel_only(path: Path) -> None:
    for pointer, schema in _objects(_load(path)):
        for name in schema["properties"]:
            assert "_" not in name, f"{path.name}{pointer}: {name}"
        assert schema.get("additionalProperties") is False or schema.get("type") != "object", f"{path.name}{pointer}"


def test_the_predict_request_keeps_struct_keys_literal() -> None:
    assert _violations("request/predict", {"instances": [{"prompt": "x"}], "parameters": {"sample_count": 1}}) == [
        ("parameters.sample_count", "additionalProperties")
    ]


# --------------------------------------------------------------------------- documented examples


@pytest.mark.parametrize("path", _examples("requests"), ids=_ids(_examples("requests")))
def test_documented_request_is_valid(path: Path) -> None:
    case = load_example(path)
    assert set(case) == {"description", "doc", "schema", "body"}
    assert _violations(case["schema"], case["body"]) == []


def _to_snake(value: Any, free: bool = False) -> Any:
    if isinstance(value, dict):
        return {(key if free else _snake(key)): _to_snake(item, free or key in ("metadata", "labels"))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_to_snake(item, free) for item in value]
    return value


@pytest.mark.parametrize("path", [p for p in _examples("requests") if "predict" not in p.stem],
                         ids=_ids([p for p in _examples("requests") if "predict" not in p.stem]))
def test_the_same_request_in_proto_field_names_is_valid(path: Path) -> None:
    case = load_example(path)
    assert _violations(case["schema"], _to_snake(case["body"])) == []


@pytest.mark.parametrize("path", _examples("invalid"), ids=_ids(_examples("invalid")))
def test_documented_invalid_request(path: Path) -> None:
    case = load_example(path)
    assert set(case) == {"description", "doc", "schema", "body", "expect"}
    report = schema_set("gemini").validate(case["schema"], case["body"])
    expect = case["expect"]
    assert [(dotted_path(v.path), v.rule) for v in report.violations] == [(expect["path"], expect["rule"])]
    if "nearest" in expect:
        assert report.violations[0].nearest == expect["nearest"]


@pytest.mark.parametrize("path", _examples("responses"), ids=_ids(_examples("responses")))
def test_documented_response_is_valid(path: Path) -> None:
    case = load_example(path)
    assert set(case) == {"description", "doc", "schema", "body"}
    assert _violations(case["schema"], case["body"]) == []


def test_every_schema_has_an_example() -> None:
    used = {load_example(p)["schema"] for kind in ("requests", "responses") for p in _examples(kind)}
    assert set(schema_set("gemini").names()) - used == set()


# --------------------------------------------------------------------------- what the SDKs rely on


def _image_answer(data: str) -> dict[str, Any]:
    part = {"inlineData": {"mimeType": "image/png", "data": data}}
    return {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}]}


def test_answer_bytes_are_standard_base64() -> None:
    """@google/genai decodes with atob, which refuses the URL-safe alphabet (dossier §4.1)."""
    assert _violations("response/generate-content", _image_answer("ab+/cd==")) == []
    assert _violations("response/generate-content", _image_answer("ab-_cd")) == [
        ("candidates[0].content.parts[0].inlineData.data", "pattern")
    ]


def test_request_bytes_take_either_alphabet() -> None:
    for data in ("ab+/cd==", "ab-_cd", "ab-_cd=="):
        body = {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": data}}]}]}
        assert _violations("request/generate-content", body) == []


@pytest.mark.parametrize(("body", "expected"), [
    ({"error": {"code": 400, "message": "x"}}, [("error.status", "required")]),
    ({"error": {"code": 429, "message": "x", "status": "TOO_MANY"}}, [("error.status", "enum")]),
    ({"error": {"code": 429, "message": "x", "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38"}]}},
     [("error.details[0].retryDelay", "pattern")]),
    ({"error": {"code": 429, "message": "x", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "45.837906927s"}]}}, []),
    ({"error": {"code": 400, "message": "x", "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.Mystery"}]}},
     [("error.details[0].@type", "discriminator")]),
])
def test_the_error_envelope(body: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """The AI SDK's error parser needs `status` (dossier §10.3); RetryInfo is a protobuf Duration."""
    assert _violations("response/status", body) == expected


def _operation() -> dict[str, Any]:
    return load_example(EXAMPLES / "responses" / "batch-capture-succeeded-file.json")["body"]


def test_the_batch_operation() -> None:
    """Operation.error is proto3 google.rpc.Status: the gRPC code number, no status word."""
    operation = _operation()
    assert _violations("response/operation", {**operation, "error": {"code": 1, "message": "x"}}) == [("", "not")]
    cancelled = {key: value for key, value in operation.items() if key != "response"}
    assert _violations("response/operation", {**cancelled, "error": {"code": 499, "message": "x"}}) == [
        ("error.code", "maximum")
    ]
    operation["metadata"]["state"] = "JOB_STATE_SUCCEEDED"  # Python's rewrite, never the wire's word
    assert _violations("response/operation", operation) == [("metadata.state", "enum")]
    assert _violations("response/operation", {**_operation(), "name": "batches/ABC"}) == [("name", "pattern")]


def test_a_batch_item_is_a_response_or_an_error() -> None:
    assert _violations("response/batch-result-line", {"key": "k"}) == [("", "oneOf")]


# --------------------------------------------------------------------------- provider.json


DATA = provider_data("gemini")


def test_the_operations_table_parses_and_names_existing_schemas() -> None:
    names = set(schema_set("gemini").names())
    table = operations("gemini")
    for operation in table.values():
        if operation.request:
            assert operation.request in names, operation.name
        for spec in operation.responses.values():
            assert set(spec.schemas) <= names, operation.name
    for name, spec in DATA["operations"].items():
        for event in spec.get("streamEvents", []) if isinstance(spec, dict) else []:
            assert event in names, name
    routed = {name for name in DATA["routes"] if name != "$comment"}
    assert routed == set(table) - {"UnknownRoute"}


def test_options_defaults_are_among_their_choices() -> None:
    for name, spec in DATA["options"].items():
        assert "doc" in spec, name
        if "choices" in spec:
            assert spec["default"] in spec["choices"], name
    assert ProviderOptions("gemini")["insufficient_credits_status"] == 402


def _models() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in DATA["models"].items() if name != "$comment"}


def _resolved(name: str) -> dict[str, Any]:
    spec = _models()[name]
    return {**_models()[spec["aliasOf"]], **spec} if "aliasOf" in spec else spec


def test_every_alias_names_a_model() -> None:
    for name, spec in _models().items():
        if "aliasOf" in spec:
            assert "aliasOf" not in _models()[spec["aliasOf"]], name


@pytest.mark.parametrize("model", sorted(_models()))
def test_every_model_size_is_in_the_shared_table(model: str) -> None:
    spec = _resolved(model)
    assert set(spec["imageTokens"]) == set(spec["imageSizes"]) == set(spec["secondsPerImage"])
    assert spec["defaultImageSize"] in spec["imageSizes"]
    for size in spec["imageSizes"]:
        for ratio in spec["aspectRatios"]:
            width, height = pixel_size(spec["sizeFamily"], ratio, DATA["imageSizeTiers"][size])
            assert width > 0 and height > 0


def test_the_published_pixel_quirks_are_kept() -> None:
    tiers = DATA["imageSizeTiers"]
    assert pixel_size(_resolved("gemini-3.1-flash-image")["sizeFamily"], "21:9", tiers["512"]) == (792, 168)
    assert pixel_size(_resolved("gemini-2.5-flash-image")["sizeFamily"], "16:9", tiers["1K"]) == (1344, 768)
    assert pixel_size(_resolved("gemini-3-pro-image")["sizeFamily"], "16:9", tiers["4K"]) == (5504, 3072)


@pytest.mark.parametrize(("model", "size", "price"), [
    ("gemini-2.5-flash-image", "1K", 0.039),
    ("gemini-3-pro-image-preview", "1K", 0.134), ("gemini-3-pro-image-preview", "2K", 0.134),
    ("gemini-3-pro-image-preview", "4K", 0.24),
    ("gemini-3.1-flash-image-preview", "512", 0.045), ("gemini-3.1-flash-image-preview", "1K", 0.067),
    ("gemini-3.1-flash-image-preview", "2K", 0.101), ("gemini-3.1-flash-image-preview", "4K", 0.151),
])
def test_image_tokens_times_the_token_price_give_the_published_price(model: str, size: str, price: float) -> None:
    """GPRICE's per-image prices (dossier §6) follow from the token table (§11) and the price per 1M tokens."""
    spec = _resolved(model)
    assert round(spec["imageTokens"][size] * spec["prices"]["imageOutputPerMillion"] / 1e6, 3) == price


def test_every_fault_kind_has_a_google_answer() -> None:
    faults = DATA["faults"]
    errors = DATA["errors"]
    assert set(DEFAULT_ERRORS) <= set(faults)
    for kind, spec in faults.items():
        if kind == "$comment":
            continue
        conditions = [spec.get("condition"), *(o.get("condition") for o in spec.get("byOperation", {}).values())]
        assert all(c in errors for c in conditions if c), kind
        status = spec.get("status_name") or DATA["statusNames"].get(str(spec["status"]), DATA["statusNames"]["default"])
        assert spec["status"] == 200 or status in CANONICAL_CODES, kind
    assert DATA["rateLimit"]["retryAfterHeader"] is False
    assert DATA["faults"]["insufficient_credits"]["statusOption"] == "insufficient_credits_status"


def test_every_error_status_has_a_canonical_name() -> None:
    for name, spec in DATA["errors"].items():
        if name == "$comment" or "html" in spec:
            continue
        assert (spec.get("status_name") or DATA["statusNames"][str(spec["status"])]) in CANONICAL_CODES, name
