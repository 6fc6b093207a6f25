"""Schema-driven validation, provider-neutral: discriminators, paths, nearest values, defaults, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.validation import SchemaSet, Violation, dotted_path, render_message

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "maxItems": 2, "items": {"$ref": "shape.json#/$defs/Shape"}}},
    "additionalProperties": False,
}
SHAPE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "Shape": {
            "type": "object",
            "required": ["kind"],
            "discriminator": {
                "propertyName": "kind",
                "mapping": {"circle": "#/$defs/Circle", "square": "#/$defs/Square"},
            },
        },
        "Circle": {
            "type": "object",
            "properties": {
                "kind": {"const": "circle"},
                "radius": {"type": "integer", "maximum": 10, "default": 1},
                "colour": {"enum": ["red", "green", "blue"], "default": "red", "x-doc": "toy guide / colours"},
                "size": {"type": "string", "enum": ["512", "1K"]},
            },
            "additionalProperties": False,
        },
        "Square": {
            "type": "object",
            "properties": {"kind": {"const": "square"}, "side": {"type": "integer"}},
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def schemas(tmp_path: Path) -> SchemaSet:
    folder = tmp_path / "toy"
    folder.mkdir()
    (tmp_path / "_shared").mkdir()
    (folder / "body.json").write_text(json.dumps(SCHEMA))
    (folder / "shape.json").write_text(json.dumps(SHAPE))
    (folder / "prices.json").write_text(json.dumps({"not": "a schema"}))
    return SchemaSet("toy", root=tmp_path)


def by_path(schemas: SchemaSet, body: object) -> dict[str, Violation]:
    return {dotted_path(v.path): v for v in schemas.validate("body", body).violations}


def test_data_files_without_a_schema_key_are_not_schemas(schemas: SchemaSet) -> None:
    assert schemas.names() == ["body", "shape"]


def test_valid_body_passes(schemas: SchemaSet) -> None:
    assert schemas.validate("body", {"items": [{"kind": "circle", "radius": 3}, {"kind": "square", "side": 2}]}).ok


def test_discriminator_reports_unknown_value_at_the_property(schemas: SchemaSet) -> None:
    found = by_path(schemas, {"items": [{"kind": "triangle"}]})
    violation = found["items[0].kind"]
    assert violation.rule == "discriminator"
    assert "No derived type found for discriminator value 'triangle'" in violation.message
    assert violation.expected == ["circle", "square"]


def test_discriminator_applies_the_mapped_schema_across_files(schemas: SchemaSet) -> None:
    found = by_path(schemas, {"items": [{"kind": "square", "radius": 2}]})
    assert found["items[0].radius"].rule == "additionalProperties"


def test_each_unknown_property_is_its_own_violation_with_a_nearest_name(schemas: SchemaSet) -> None:
    found = by_path(schemas, {"items": [{"kind": "circle", "Radius": 2, "zzz": 1}]})
    assert found["items[0].Radius"].nearest == "radius"
    assert found["items[0].zzz"].nearest is None


def test_an_unknown_field_suggests_the_same_concept_under_the_schema_s_name(schemas: SchemaSet) -> None:
    # `size`, `color`: no concept of the shared table is spelled like them, so spelling decides.
    found = by_path(schemas, {"items": [{"kind": "circle", "color": "red", "aspectRatio": "1:1", "num_images": 2}]})
    assert found["items[0].color"].nearest == "colour"
    assert found["items[0].aspectRatio"].nearest == "size"  # the aspect-ratio concept, not the spelling
    assert found["items[0].num_images"].nearest is None  # the concept has no name in this schema


def test_near_miss_carries_the_doc_reference(schemas: SchemaSet) -> None:
    found = by_path(schemas, {"items": [{"kind": "circle", "colour": "pink"}]})
    assert found["items[0].colour"].doc == "toy guide / colours"
    assert found["items[0].colour"].as_dict()["doc"] == "toy guide / colours"


def test_enum_and_limit_nearest_values(schemas: SchemaSet) -> None:
    found = by_path(schemas, {"items": [{"kind": "circle", "colour": "RED", "radius": 11}]})
    assert found["items[0].colour"].nearest == "red"
    assert found["items[0].radius"].nearest == 10
    too_many = by_path(schemas, {"items": [{"kind": "square"}] * 3})
    assert too_many["items"].rule == "maxItems"


def test_a_wrong_type_is_one_violation_not_two(schemas: SchemaSet) -> None:
    violations = schemas.validate("body", {"items": [{"kind": "circle", "size": 512}]}).violations
    assert [(dotted_path(v.path), v.rule) for v in violations] == [("items[0].size", "type")]


def test_missing_required_property_is_reported_at_its_own_path(schemas: SchemaSet) -> None:
    assert by_path(schemas, {})["items"].rule == "required"
    assert by_path(schemas, {"items": [{}]})["items[0].kind"].rule == "required"


def test_defaults_follow_refs_and_discriminators(schemas: SchemaSet) -> None:
    filled = schemas.with_defaults("body", {"items": [{"kind": "circle"}, {"kind": "square"}]})
    assert filled == {"items": [{"kind": "circle", "radius": 1, "colour": "red"}, {"kind": "square"}]}


def test_messages_fill_provider_templates() -> None:
    violation = Violation(("steps", 0, "input", "resolution"), "enum", "x", "4k", ["1K", "2K"], "1K")
    templates = {"enum": "The value '{value}' is not valid for {field}; one of {expected} (try {nearest}).'"}
    assert render_message(templates, violation) == (
        "The value '4k' is not valid for resolution; one of 1K, 2K (try 1K).'"
    )
    assert render_message({}, violation) == "x"
    assert dotted_path(violation.path) == "steps[0].input.resolution"


@pytest.mark.parametrize(("sent", "candidates", "nearest"), [
    # Ratios by their ratio (in log space): 16:10 is 1.6, nearer 3:2 (1.5) than 16:9 (1.78), far from 1:1.
    ("16:10", ["21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"], "3:2"),
    ("1:4", ["1:1", "2:3", "9:16", "16:9"], "9:16"),
    ("17:9", ["auto", "1:1", "16:9"], "16:9"),  # a word among the ratios is not a ratio
    # Pixel sizes by both sides; tiers by magnitude within their unit; numbers by magnitude.
    ("1000x1000", ["1376x768", "1024x1024", "768x1376"], "1024x1024"),
    ("1400\u00d7800", ["1024x1024", "1376x768"], "1376x768"),
    ("8K", ["0.5K", "1K", "2K", "4K"], "4K"),
    ("4k", ["1K", "2K", "4K"], "4K"),
    (11, [1, 2, 10], 10),
    (3.9, [1, 4, 8], 4),
    # Anything else by its spelling.
    ("blu", ["red", "blue"], "blue"),
    ("PNG", ["png", "jpeg"], "png"),
])
def test_the_nearest_value_is_nearest_in_the_value_s_own_terms(tmp_path: Path, sent: object, candidates: list[object],
                                                              nearest: object) -> None:
    (tmp_path / "_shared").mkdir()
    (tmp_path / "toy").mkdir()
    schema = {"$schema": SCHEMA["$schema"], "properties": {"value": {"enum": candidates}}}
    (tmp_path / "toy" / "body.json").write_text(json.dumps(schema))
    (violation,) = SchemaSet("toy", root=tmp_path).validate("body", {"value": sent}).violations
    assert (violation.rule, violation.nearest) == ("enum", nearest)


@pytest.mark.parametrize(("slug", "schema", "body", "field", "meant"), [
    ("evolink", "request/image-generation", {"model": "gemini-3.1-flash-image-preview", "prompt": "p"},
     "aspect_ratio", "size"),
    ("evolink", "request/image-generation", {"model": "gemini-3.1-flash-image-preview", "prompt": "p"},
     "resolution", "quality"),
    ("civitai", "request/image-gen-input", {"engine": "google", "model": "nano-banana-2", "prompt": "p"},
     "n", "numImages"),
    ("civitai", "request/image-gen-input", {"engine": "google", "model": "nano-banana-2", "prompt": "p"},
     "image_urls", "images"),
    ("qingbo", "request/task-en", {"model": "gemini-3.1-flash-image-preview", "prompt": "p"},
     "numImages", "n"),
    ("runware", "request/task", {"taskType": "imageInference", "taskUUID": "0b8bd1b8-3c5a-4d5a-9f3b-6c1f1a1e2d3c",
                                 "model": "google:4@1", "positivePrompt": "p"}, "num_images", "numberResults"),
    ("runware", "request/task", {"taskType": "imageInference", "taskUUID": "0b8bd1b8-3c5a-4d5a-9f3b-6c1f1a1e2d3c",
                                 "model": "google:4@1", "positivePrompt": "p"}, "aspectRatio", "width+height"),
])
def test_an_unknown_field_names_the_provider_s_own_field_for_the_same_thing(slug: str, schema: str, body: dict,
                                                                           field: str, meant: str) -> None:
    from simulator.validation import schema_set

    violations = schema_set(slug).validate(schema, {**body, field: "x"}).violations
    unknown = [v for v in violations if v.rule == "additionalProperties"]
    assert [(dotted_path(v.path), v.nearest) for v in unknown] == [(field, meant)]


def test_a_body_wrong_in_thousands_of_places_pays_for_the_first_suggestions_only(
        schemas: SchemaSet, monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator import field_names, validation

    calls: list[str] = []
    real = field_names.meant

    def counted(name: str, documented: object) -> str | None:
        calls.append(name)
        return real(name, documented)  # type: ignore[arg-type]

    monkeypatch.setattr(field_names, "meant", counted)
    circle = {"kind": "circle", "Radius": 2, **{f"zz{n:04d}": n for n in range(1500)}}
    violations = schemas.validate("body", {"items": [circle, {"kind": "square", "Side": 1}]}).violations
    assert len(violations) == 1 + 1500 + 1  # every one still reported, in path order
    assert [dotted_path(v.path) for v in violations] == sorted(dotted_path(v.path) for v in violations)
    assert len(calls) == validation.MAX_VIOLATIONS
    assert violations[0].path == ("items", 0, "Radius") and violations[0].nearest == "radius"
    assert violations[-1].path == ("items", 1, "Side") and violations[-1].nearest is None  # past the first 200
    assert all(v.nearest is None for v in violations[validation.MAX_VIOLATIONS:])
    # Under the bound, nothing changes: each unknown field gets its suggestion as before.
    assert by_path(schemas, {"items": [{"kind": "square", "Side": 1}]})["items[0].Side"].nearest == "side"
