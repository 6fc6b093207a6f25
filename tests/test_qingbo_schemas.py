"""qingbo schemas (schemas/qingbo) against the documented examples and the seed's model matrix.

Sources: seed 001 (qingbo "Gemini Image Series" page) and the qingbo dossier. Examples are kept in
schemas/qingbo/examples/ (see its README.md); this file checks them without a server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulator.options import provider_data
from simulator.resources import schemas_dir
from simulator.validation import BASE_URI, dotted_path, schema_set

ROOT = schemas_dir() / "qingbo"
EXAMPLES = ROOT / "examples"
SCHEMAS = schema_set("qingbo")
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

STANDARD_RATIOS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
EXTREME_RATIOS = ["1:4", "4:1", "1:8", "8:1"]
# seed 001, Model-Specific Parameters and Common Parameters, written out independently of the schemas.
SEED_MATRIX = {
    "gemini-3-pro-image-preview-official": (["1K", "2K", "4K"], STANDARD_RATIOS, False),
    "gemini-3-pro-image-preview": (["1K", "2K", "4K"], STANDARD_RATIOS, False),
    "gemini-3.1-flash-image-preview-official": (["0.5K", "1K", "2K", "4K"], STANDARD_RATIOS + EXTREME_RATIOS, True),
    "gemini-3.1-flash-image-preview": (["0.5K", "1K", "2K", "4K"], STANDARD_RATIOS + EXTREME_RATIOS, True),
    "gemini-2.5-flash-image-preview-official": (["1K"], STANDARD_RATIOS, False),
    "gemini-2.5-flash-image-preview": (["1K"], STANDARD_RATIOS, False),
}
ALL_RESOLUTIONS = ["0.5K", "1K", "2K", "4K"]


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _files(folder: str) -> list[Path]:
    return sorted((EXAMPLES / folder).glob("*.json"))


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_every_schema_file_is_draft_2020_12_with_its_own_id() -> None:
    for path in sorted(ROOT.rglob("*.json")):
        relative = path.relative_to(schemas_dir()).as_posix()
        if "/examples/" in relative or path.name == "provider.json":
            continue
        document = _load(path)
        assert document["$schema"] == DRAFT_2020_12, relative
        assert document["$id"] == BASE_URI + relative, relative
    assert set(SCHEMAS.names()) >= {
        "request/task-en", "request/task-cn", "request/task-common", "response/task", "response/callback",
        "response/cancel", "response/error", "response/quota-window-error", "response/submit-legacy", "response/sync",
    }


def test_provider_card_prices_and_models_match_the_seed() -> None:
    card = provider_data("qingbo")
    assert set(card["models"]) == set(SEED_MATRIX)
    seed_prices = {
        "gemini-3-pro-image-preview-official": 0.1139, "gemini-3-pro-image-preview": 0.0425,
        "gemini-3.1-flash-image-preview-official": 0.05695, "gemini-3.1-flash-image-preview": 0.031875,
        "gemini-2.5-flash-image-preview-official": 0.03315, "gemini-2.5-flash-image-preview": 0.01328125,
    }
    assert {m: c["usdPerImage"]["flat"] for m, c in card["models"].items()} == seed_prices
    for model, (resolutions, _, _) in SEED_MATRIX.items():
        assert sorted(card["models"][model]["secondsPerImage"]) == sorted(resolutions)
        assert sorted(card["models"][model]["usdPerImage"]["byResolution"]) == sorted(resolutions)
    assert {"www.qingbo.dev", "qingbo.dev"} <= set(card["hosts"])
    for name, option in card["options"].items():
        assert option["doc"], name
        assert "choices" not in option or option["default"] in option["choices"], name


@pytest.mark.parametrize("model", sorted(SEED_MATRIX))
def test_en_contract_follows_the_seed_model_matrix(model: str) -> None:
    resolutions, ratios, search = SEED_MATRIX[model]
    base = {"model": model, "prompt": "a banana"}
    for resolution in ALL_RESOLUTIONS:
        assert SCHEMAS.is_valid("request/task-en", {**base, "resolution": resolution}) == (resolution in resolutions)
    for ratio in STANDARD_RATIOS + EXTREME_RATIOS + ["auto"]:
        assert SCHEMAS.is_valid("request/task-en", {**base, "aspect_ratio": ratio}) == (ratio in ratios)
    for flag in ("google_search", "google_image_search"):
        assert SCHEMAS.is_valid("request/task-en", {**base, flag: True}) == search
    assert SCHEMAS.is_valid("request/task-en", {**base, "action": "search_grounded"}) == search
    for action in ("image2image", "edit", "reference"):
        assert not SCHEMAS.is_valid("request/task-en", {**base, "action": action})
        assert SCHEMAS.is_valid("request/task-en", {**base, "action": action, "image_urls": ["https://e.com/a.png"]})
    assert SCHEMAS.is_valid("request/task-en", {**base, "seed": -1, "official_fallback": True, "n": 2})
    assert SCHEMAS.with_defaults("request/task-en", base) | base == {
        **base, "action": "generate", "n": 1, "seed": -1, "aspect_ratio": "1:1", "resolution": "1K",
        "official_fallback": False, **({"google_search": False, "google_image_search": False} if search else {}),
    }


@pytest.mark.parametrize("model", sorted(SEED_MATRIX))
def test_cn_contract_is_the_narrower_june_page(model: str) -> None:
    resolutions, _, search = SEED_MATRIX[model]
    official = model.endswith("-official")
    base = {"model": model, "prompt": "a banana"}
    assert SCHEMAS.is_valid("request/task-cn", {**base, "aspect_ratio": "auto"})
    for ratio in EXTREME_RATIOS:
        assert not SCHEMAS.is_valid("request/task-cn", {**base, "aspect_ratio": ratio})
    for action in ("image2image", "reference", "search_grounded"):
        assert not SCHEMAS.is_valid("request/task-cn", {**base, "action": action, "image_urls": ["https://e.com/a"]})
    assert not SCHEMAS.is_valid("request/task-cn", {**base, "seed": 1})
    assert SCHEMAS.is_valid("request/task-cn", {**base, "official_fallback": True}) == (not official)
    assert SCHEMAS.is_valid("request/task-cn", {**base, "google_search": True}) == (search and not official)
    for resolution in ALL_RESOLUTIONS:
        assert SCHEMAS.is_valid("request/task-cn", {**base, "resolution": resolution}) == (resolution in resolutions)


@pytest.mark.parametrize("path", _files("requests"), ids=_ids(_files("requests")))
def test_documented_requests_validate(path: Path) -> None:
    example = _load(path)
    assert {"description", "doc", "contract", "headers", "body"} <= set(example)
    report = SCHEMAS.validate(f"request/task-{example['contract']}", example["body"])
    assert report.ok, [v.as_dict() for v in report.violations]


@pytest.mark.parametrize("path", _files("invalid"), ids=_ids(_files("invalid")))
def test_invalid_examples_give_exactly_the_documented_violation(path: Path) -> None:
    example = _load(path)
    report = SCHEMAS.validate(f"request/task-{example['contract']}", example["body"])
    assert len(report.violations) == 1, [v.as_dict() for v in report.violations]
    (violation,) = report.violations
    expect = example["expect"]
    assert (dotted_path(violation.path), violation.rule) == (expect["path"], expect["rule"])
    if "nearest" in expect:
        assert violation.nearest == expect["nearest"]


@pytest.mark.parametrize("path", _files("responses"), ids=_ids(_files("responses")))
def test_documented_responses_validate(path: Path) -> None:
    example = _load(path)
    report = SCHEMAS.validate(example["schema"], example["body"])
    assert report.ok, [v.as_dict() for v in report.violations]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"task_id": "task-wave1", "status": "completed", "action": "generate", "model": "m", "progress": 100,
          "created_at": 1}, "completed without result, cost or completed_at"),
        ({"task_id": "task-wave1", "status": "queued", "action": "generate", "model": "m", "progress": 0,
          "created_at": 1, "cost": 5}, "cost before a terminal state"),
        ({"task_id": "task-wave1", "status": "succeeded", "action": "generate", "model": "m", "progress": 0,
          "created_at": 1}, "KX status word"),
        ({"task_id": "task-wave1", "status": "completed", "action": "generate", "model": "m", "progress": 100,
          "created_at": 1, "completed_at": 2, "cost": 1, "result": {"images": [{"url": "https://x", "expires_at": 3}]}},
         "url must be an array on GET"),
        ({"task_id": "task-wave1", "status": "processing", "action": "generate", "model": "m", "progress": 101,
          "created_at": 1}, "progress above 100"),
    ],
)
def test_task_schema_rejects_what_the_docs_rule_out(body: dict[str, Any], reason: str) -> None:
    assert not SCHEMAS.is_valid("response/task", body), reason
