"""Civitai Orchestration v2 schemas (schemas/civitai) against the documented examples.

Sources: seed 000 (Civitai "Google image generation" page), the Civitai dossier and the official
OpenAPI document. The examples are copied into schemas/civitai/examples/ (see its README.md).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from support_schemas import schema_references

from simulator.examples import expand as _expand
from simulator.resources import schemas_dir
from simulator.validation import BASE_URI, dotted_path, schema_set

ROOT = schemas_dir() / "civitai"
EXAMPLES = ROOT / "examples"
TEMPLATE = "request/workflow-template"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

EXPECTED_SCHEMAS = {
    "request/image-gen-input",
    "request/update-step",
    "request/update-workflow",
    "request/workflow-tag",
    "request/workflow-template",
    "response/blob",
    "response/job-event",
    "response/problem-details",
    "response/step-event",
    "response/validation-problem-details",
    "response/workflow",
    "response/workflow-event",
    "response/workflow-list",
    "response/workflow-step",
}

# Which response schema each documented response example is an instance of.
RESPONSE_SCHEMAS = {
    "seed000-reading-the-result.json": "response/workflow",
    "dossier-4.4-terminal-200.json": "response/workflow",
    "dossier-5.2-whatif.json": "response/workflow",
    "dossier-6.5-blocked-step.json": "response/workflow",
    "dossier-6.1-validation-problem.json": "response/validation-problem-details",
    "dossier-7-callback-workflow-event.json": "response/workflow-event",
}

# Documented examples that leave out fields the spec marks required. They are checked to fail with
# `required` violations only, then validated again after `_complete_workflow` fills the gaps, so
# the strict response schemas stay strict.
ABBREVIATED = {
    "seed000-reading-the-result.json": (
        "seed 000 'Reading the result' shows only status/steps: it lacks the Workflow's required "
        "createdAt, metadata, arguments, tags, callbacks, tips, cost, currencies, upgradeMode and "
        "forceRefunded; the step's metadata, priority and input; and the image's type and available"
    ),
    "dossier-6.5-blocked-step.json": (
        "dossier §6.5 shows only id/status/steps: it lacks the Workflow's required fields and the "
        "step's metadata, priority and input"
    ),
}

_WORKFLOW_DEFAULTS: dict[str, Any] = {
    "createdAt": "2026-05-25T23:21:19.4610000Z",
    "metadata": {},
    "arguments": {},
    "tags": [],
    "callbacks": [],
    "tips": {"civitai": 0, "creators": 0},
    "cost": {"base": 104, "tips": {"civitai": 0, "creators": 0}, "total": 104},
    "currencies": [],
    "upgradeMode": "manual",
    "forceRefunded": False,
}
_STEP_DEFAULTS: dict[str, Any] = {
    "metadata": {},
    "priority": "normal",
    "input": {"engine": "google", "model": "nano-banana-2", "prompt": "A lighthouse on a cliff at dusk"},
}
_IMAGE_DEFAULTS: dict[str, Any] = {"type": "image", "available": True}


def _complete_workflow(document: dict[str, Any]) -> dict[str, Any]:
    """Add the required members an abbreviated example leaves out; never change a written value."""
    filled = copy.deepcopy(document)
    for key, value in _WORKFLOW_DEFAULTS.items():
        filled.setdefault(key, copy.deepcopy(value))
    for step in filled.get("steps", []):
        for key, value in _STEP_DEFAULTS.items():
            step.setdefault(key, copy.deepcopy(value))
        for image in (step.get("output") or {}).get("images", []):
            for key, value in _IMAGE_DEFAULTS.items():
                image.setdefault(key, value)
    return filled


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _files(folder: str) -> list[Path]:
    return sorted((EXAMPLES / folder).glob("*.json"))


def _schema_files() -> list[Path]:
    """Every JSON Schema under schemas/civitai (data tables such as provider.json carry no `$schema`)."""
    paths = sorted(p for p in ROOT.rglob("*.json") if "examples" not in p.relative_to(ROOT).parts)
    return [p for p in paths if isinstance(doc := _load(p), dict) and "$schema" in doc]


def _violations(name: str, instance: Any) -> list[tuple[str, str]]:
    return [(dotted_path(v.path), v.rule) for v in schema_set("civitai").validate(name, instance).violations]


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


# --------------------------------------------------------------------------- the schema files


def test_schema_set_names() -> None:
    names = set(schema_set("civitai").names())
    assert names >= EXPECTED_SCHEMAS, sorted(EXPECTED_SCHEMAS - names)


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_schema_file_is_valid_draft_2020_12(path: Path) -> None:
    document = _load(path)
    assert document["$schema"] == DRAFT_2020_12
    assert document["$id"] == f"{BASE_URI}civitai/{path.relative_to(ROOT).as_posix()}"
    Draft202012Validator.check_schema(document)


def test_every_reference_resolves() -> None:
    documents = [_load(p) for p in _schema_files()]
    shared = [_load(p) for p in sorted((schemas_dir() / "_shared").rglob("*.json"))]
    registry: Registry[Any] = Registry().with_resources(
        (d["$id"], Resource.from_contents(d, default_specification=DRAFT202012))
        for d in documents + [s for s in shared if isinstance(s, dict) and "$id" in s]
    )
    for document in documents:
        resolver = registry.resolver(base_uri=document["$id"])
        for reference in schema_references(document):
            resolver.lookup(reference)  # raises if the target is missing


def test_cross_file_references_target_defs() -> None:
    """A `$ref` to a whole other document loses `discriminator` (jsonschema's `evolve` re-picks the
    validator class from that document's `$schema`), so cross-file references point into `$defs`."""
    for path in _schema_files():
        for reference in schema_references(_load(path)):
            target, _, fragment = reference.partition("#")
            if target:
                assert fragment.startswith("/$defs/"), f"{path.name}: {reference}"


def test_discriminators_only_select() -> None:
    """A schema with a discriminator leaves the property set to its mapped, flattened targets."""

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "discriminator" in node:
                assert "properties" not in node and "additionalProperties" not in node, where
                assert node["discriminator"]["propertyName"] in node["required"], where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}/{index}")

    for path in _schema_files():
        walk(_load(path), path.name)


# --------------------------------------------------------------------------- documented requests


@pytest.mark.parametrize("path", _files("requests"), ids=_ids(_files("requests")))
def test_documented_request_is_valid(path: Path) -> None:
    assert _violations(TEMPLATE, _load(path)) == []


def test_documented_requests_present() -> None:
    assert len(_files("requests")) == 6


# --------------------------------------------------------------------------- documented 400s


@pytest.mark.parametrize("path", _files("invalid"), ids=_ids(_files("invalid")))
def test_documented_invalid_request(path: Path) -> None:
    case = _load(path)
    assert set(case) == {"description", "doc", "body", "expect"}
    report = schema_set("civitai").validate(TEMPLATE, _expand(case["body"]))
    expect = case["expect"]
    found = [(dotted_path(v.path), v.rule) for v in report.violations]
    assert found == [(expect["path"], expect["rule"])], case["description"]
    if "nearest" in expect:
        assert report.violations[0].nearest == expect["nearest"]


def test_lowercase_4k_suggests_4K() -> None:
    case = _load(EXAMPLES / "invalid" / "nb2-resolution-lowercase-4k.json")
    (violation,) = schema_set("civitai").validate(TEMPLATE, case["body"]).violations
    assert violation.nearest == "4K"
    assert violation.value == "4k"


@pytest.mark.parametrize(
    ("file", "value"), [("unknown-engine.json", "vertex"), ("unknown-model.json", "nano-banana-3")]
)
def test_unknown_discriminator_message(file: str, value: str) -> None:
    body = _load(EXAMPLES / "invalid" / file)["body"]
    (violation,) = schema_set("civitai").validate(TEMPLATE, body).violations
    assert violation.message == f"No derived type found for discriminator value '{value}'"


def test_repeat_placeholder_expands() -> None:
    body = _expand(_load(EXAMPLES / "invalid" / "nb2-prompt-too-long.json")["body"])
    assert body["steps"][0]["input"]["prompt"] == "a" * 50001


def _submit(model: str, **fields: Any) -> dict[str, Any]:
    return {
        "steps": [
            {"$type": "imageGen", "input": {"engine": "google", "model": model, "prompt": "p", **fields}}
        ]
    }


@pytest.mark.parametrize(
    "body",
    [
        _submit("nano-banana-2", prompt="a" * 50000, numImages=4, images=["x"] * 10, seed=-2147483648),
        _submit("nano-banana-2", seed=None),
        _submit("nano-banana-2", seed=2147483647),
        _submit("nano-banana-2", enableWebSearch=True, enableGoogleSearch=True, resolution="4K"),
        _submit(
            "nano-banana-pro", images=["data:image/png;base64,AAAA"], resolution="4K", aspectRatio="9:16"
        ),
        _submit("imagen4", prompt="a" * 1000, negativePrompt="", seed=9223372036854775807, aspectRatio="3:4"),
        _submit("nano-banana-2-lite", images=["x"], seed=7, aspectRatio="21:9", numImages=2),
        _submit("nano-banana-2", outputFormat="webP", imageMetadata=None),
        {
            **_submit("nano-banana-2"),
            "tags": [f"t{n}" for n in range(10)],
            "tips": {"civitai": 0, "creators": 2},
            "currencies": ["yellow", "blue", "green", "fakeRed"],
            "upgradeMode": "automatic",
            "nsfwLevel": "pg13",
            "ephemeral": True,
            "externalId": "A_z-0" * 25 + "abc",
            "callbacks": [
                {"url": "https://example.com/hook", "type": ["job:*", "step:failed"], "detailed": None}
            ],
        },
        {
            "steps": [
                {
                    "$type": "imageGen",
                    "name": "gen",
                    "priority": "low",
                    "timeout": "00:10:00",
                    "retries": 2,
                    "metadata": {"k": 1},
                    "input": {"engine": "google", "model": "imagen4", "prompt": "p"},
                }
            ],
        },
    ],
    ids=[
        "nb2-limits",
        "nb2-null-seed",
        "nb2-max-seed",
        "nb2-search",
        "pro-edit",
        "imagen4-limits",
        "lite",
        "base-fields",
        "template-fields",
        "step-fields",
    ],
)
def test_valid_edge_cases(body: dict[str, Any]) -> None:
    assert _violations(TEMPLATE, body) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_submit("imagen4", seed=9223372036854775808), ("steps[0].input.seed", "maximum")),
        (_submit("nano-banana-2", seed=-2147483649), ("steps[0].input.seed", "minimum")),
        (_submit("nano-banana-2", numImages=0), ("steps[0].input.numImages", "minimum")),
        (_submit("nano-banana-2", outputFormat="webp"), ("steps[0].input.outputFormat", "enum")),
        (_submit("imagen4", negativePrompt="n" * 1001), ("steps[0].input.negativePrompt", "maxLength")),
        (
            _submit("nano-banana-2-lite", enableGoogleSearch=True),
            ("steps[0].input.enableGoogleSearch", "additionalProperties"),
        ),
        ({"steps": [{"$type": "videoGen", "input": {}}]}, ("steps[0].$type", "discriminator")),
        ({"steps": [{"$type": "imageGen"}]}, ("steps[0].input", "required")),
        ({**_submit("nano-banana-2"), "tags": ["a", "a"]}, ("tags", "uniqueItems")),
        ({**_submit("nano-banana-2"), "tags": ["t" * 201]}, ("tags[0]", "maxLength")),
        ({**_submit("nano-banana-2"), "tips": {"civitai": 3, "creators": 0}}, ("tips.civitai", "maximum")),
        ({**_submit("nano-banana-2"), "externalId": "x" * 129}, ("externalId", "maxLength")),
        (
            {**_submit("nano-banana-2"), "callbacks": [{"url": "https://e.x", "type": ["workflow:done"]}]},
            ("callbacks[0].type[0]", "enum"),
        ),
        ({**_submit("nano-banana-2"), "wait": 60}, ("wait", "additionalProperties")),
    ],
    ids=[
        "imagen4-seed-int64",
        "nb2-seed-int32",
        "num-images-0",
        "output-format-case",
        "negative-prompt",
        "lite-search",
        "unknown-step-type",
        "step-without-input",
        "duplicate-tags",
        "long-tag",
        "tip-rate",
        "long-external-id",
        "callback-type",
        "wait-in-body",
    ],
)
def test_invalid_edge_cases(body: dict[str, Any], expected: tuple[str, str]) -> None:
    assert _violations(TEMPLATE, body) == [expected]


# --------------------------------------------------------------------------- other request bodies


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("request/update-workflow", {"status": "canceled"}, []),
        ("request/update-workflow", {"metadata": {"a": 1}, "tags": ["x"], "allowMatureContent": None}, []),
        ("request/update-workflow", {"status": "succeeded"}, [("status", "enum")]),
        ("request/update-workflow", {"name": "x"}, [("name", "additionalProperties")]),
        ("request/workflow-tag", "tenant:42", []),
        ("request/workflow-tag", "t" * 201, [("", "maxLength")]),
        ("request/workflow-tag", ["tenant:42"], [("", "type")]),
        ("request/update-step", {"metadata": {}}, []),
        ("request/update-step", {}, [("metadata", "required")]),
        ("request/update-step", {"metadata": None}, [("metadata", "type")]),
    ],
)
def test_small_request_bodies(name: str, body: Any, expected: list[tuple[str, str]]) -> None:
    assert _violations(name, body) == expected


# --------------------------------------------------------------------------- documented responses


def test_every_response_example_is_mapped() -> None:
    assert {p.name for p in _files("responses")} == set(RESPONSE_SCHEMAS)
    assert set(ABBREVIATED) <= set(RESPONSE_SCHEMAS)


@pytest.mark.parametrize("file", sorted(RESPONSE_SCHEMAS))
def test_documented_response(file: str) -> None:
    document = _load(EXAMPLES / "responses" / file)
    name = RESPONSE_SCHEMAS[file]
    found = _violations(name, document)
    if file not in ABBREVIATED:
        assert found == []
        return
    # Abbreviated in the docs: the only problems allowed are missing required members.
    assert found, f"{file} is marked abbreviated but validates as written"
    assert {rule for _, rule in found} == {"required"}, found
    assert _violations(name, _complete_workflow(document)) == [], ABBREVIATED[file]


def _terminal() -> dict[str, Any]:
    return _load(EXAMPLES / "responses" / "dossier-4.4-terminal-200.json")


def test_workflow_step_and_blob_schemas() -> None:
    step = _terminal()["steps"][0]
    assert _violations("response/workflow-step", step) == []
    image = step["output"]["images"][0]
    assert _violations("response/blob", image) == []
    assert _violations("response/blob", {**image, "tier": "default"}) == [("tier", "additionalProperties")]
    assert _violations("response/blob", {**image, "type": "video"}) == [("type", "discriminator")]
    blocked = {"type": "image", "id": "b", "available": False, "blockedReason": "blocked", "url": None}
    assert _violations("response/blob", blocked) == []


def test_workflow_list() -> None:
    assert _violations("response/workflow-list", {"next": None, "items": [_terminal()]}) == []
    assert _violations("response/workflow-list", {"next": "c2", "items": []}) == []
    assert _violations("response/workflow-list", {"items": []}) == [("next", "required")]


def test_workflow_response_is_strict() -> None:
    workflow = _terminal()
    assert _violations("response/workflow", {**workflow, "extra": 1}) == [("extra", "additionalProperties")]
    workflow["steps"][0]["status"] = "pending"
    workflow["steps"][0]["input"]["seed"] = 1  # nano-banana-pro has no seed, also in the echo
    workflow["steps"][0]["output"]["images"][0]["type"] = "video"
    assert _violations("response/workflow", workflow) == [
        ("steps[0].input.seed", "additionalProperties"),
        ("steps[0].output.images[0].type", "enum"),
        ("steps[0].status", "enum"),
    ]
    listing = {"next": None, "items": [workflow]}
    assert ("items[0].steps[0].input.seed", "additionalProperties") in _violations(
        "response/workflow-list", listing
    )


def test_job_reason_fields_are_accepted() -> None:
    workflow = _complete_workflow(_load(EXAMPLES / "responses" / "dossier-6.5-blocked-step.json"))
    job = workflow["steps"][0]["jobs"][0]
    assert job["reason"] == "blocked"
    assert _violations("response/workflow", workflow) == []


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        (
            "response/problem-details",
            {
                "type": "https://tools.ietf.org/html/rfc9110#section-15.5.2",
                "title": "Unauthorized",
                "status": 401,
            },
            [],
        ),
        ("response/problem-details", {"title": "x", "traceId": "00-abc"}, []),
        ("response/validation-problem-details", {"title": "x", "status": 400}, [("errors", "required")]),
        ("response/validation-problem-details", {"errors": {"messages": ["Insufficient buzz"]}}, []),
        (
            "response/step-event",
            {
                "$type": "step",
                "workflowId": "w",
                "name": "$0",
                "status": "processing",
                "details": {
                    "retries": 0,
                    "estimatedProgressRate": 0.5,
                    "input": None,
                    "output": {"images": []},
                },
            },
            [],
        ),
        (
            "response/step-event",
            {"$type": "step", "workflowId": "w", "name": "$0", "status": "processing", "preparation": {}},
            [("preparation", "additionalProperties")],
        ),
        (
            "response/job-event",
            {
                "$type": "job",
                "workflowId": "w",
                "stepName": "$0",
                "jobId": "j",
                "status": "failed",
                "progress": None,
                "reason": "blocked",
                "blockedReason": "content",
                "matureContent": False,
            },
            [],
        ),
        (
            "response/job-event",
            {"$type": "job", "workflowId": "w", "stepName": "$0", "status": "failed"},
            [("jobId", "required")],
        ),
        (
            "response/workflow-event",
            {
                "$type": "workflow",
                "workflowId": "w",
                "status": "succeeded",
                "timestamp": "2026-05-25T23:21:41.0000000Z",
                "details": {
                    "createdAt": "2026-05-25T23:21:19.4610000Z",
                    "steps": [],
                    "metadata": {"correlationId": "abc"},
                },
            },
            [],
        ),
    ],
)
def test_other_response_bodies(name: str, body: Any, expected: list[tuple[str, str]]) -> None:
    assert _violations(name, body) == expected
