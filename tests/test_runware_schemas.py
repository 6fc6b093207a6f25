"""Runware schemas (schemas/runware) and the documented examples, checked as data and against the server.

Every example request of seed 002 and the dossier, sent as written, must get an answer valid against
`response/envelope`; every documented response must be valid against its schema; every invalid case
must give Runware's 400 with the expected code and parameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import server_fixture
from support_runware import SCHEMAS

from simulator.control_client import ControlClient
from simulator.examples import expand as _expand
from simulator.images import families, tiers
from simulator.live import LiveServer
from simulator.options import provider_data
from simulator.resources import schemas_dir
from simulator.validation import BASE_URI

ROOT = schemas_dir() / "runware"
EXAMPLES = ROOT / "examples"
DATA = provider_data("runware")
KEY = "rw-schema-key"

RESPONSE_SCHEMAS = {
    "seed002-": "response/image-result",
    "dossier-3.2-": "response/error",
    "errors-page-": "response/envelope",
    "observed-": "response/envelope",
    "dossier-6.2-": "response/envelope",
}

server = server_fixture("runware")


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _as_array(body: Any) -> list[Any]:
    """Seed 002 prints each task on its own; the wire body is always an array."""
    return body if isinstance(body, list) else [body]


@pytest.fixture(scope="module")
def clients(server: LiveServer) -> Iterator[tuple[ControlClient, httpx.Client]]:
    # One pair per module: building an httpx client (its TLS context) costs more than a test.
    control = ControlClient(server.url)
    with httpx.Client(base_url=server.url + "/runware", headers={"Authorization": f"Bearer {KEY}"},
                      timeout=30) as client:
        yield control, client
    control.close()


@pytest.fixture
def api(clients: tuple[ControlClient, httpx.Client]) -> httpx.Client:
    control, client = clients
    control.reset(seed=0)
    control.set_autojump(True)
    return client


def test_every_schema_declares_draft_2020_12_and_its_own_id() -> None:
    for path in sorted(ROOT.rglob("*.json")):
        relative = path.relative_to(schemas_dir()).as_posix()
        document = _load(path)
        if "/examples/" in relative or "$schema" not in document:
            continue
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema", relative
        assert document["$id"] == BASE_URI + relative, relative


def test_the_data_card_matches_the_schemas_and_the_size_table() -> None:
    mapping = SCHEMAS.document("request/image-inference")["discriminator"]["mapping"]
    assert set(mapping) == set(DATA["models"])
    for model, card in DATA["models"].items():
        assert card["sizeFamily"] in families()
        assert set(card["usdPerImage"]) == set(tiers(card["sizeFamily"])) == set(card["secondsPerImage"])
        target = SCHEMAS.document("request/image-inference")["$defs"][mapping[model].rsplit("/", 1)[1]]
        resolution = target["properties"].get("resolution")
        if resolution is not None:
            assert set(resolution["enum"]) == set(tiers(card["sizeFamily"])), model
    for name, spec in DATA["options"].items():
        assert spec["doc"], name
        assert "choices" not in spec or spec["default"] in spec["choices"], name


@pytest.mark.parametrize("path", sorted((EXAMPLES / "requests").glob("*.json")), ids=lambda p: p.stem)
def test_documented_requests_validate_and_get_a_valid_answer(api: httpx.Client, path: Path) -> None:
    body = _as_array(_load(path))
    for task in body:
        assert SCHEMAS.validate("request/task", task).ok, (path.name, task)
    headers = {} if body[0].get("taskType") == "authentication" else {"Authorization": f"Bearer {KEY}"}
    response = api.post("/v1", json=body, headers=headers or None)
    answer = response.json()
    assert SCHEMAS.validate("response/envelope", answer).ok, answer
    if path.name.startswith(("seed002-", "dossier-4.5")):
        assert response.status_code == 200 and "errors" not in answer
        assert all(item["taskUUID"] == body[0]["taskUUID"] for item in answer["data"])


def test_seed_examples_get_the_documented_size_and_price(api: httpx.Client) -> None:
    for path in sorted((EXAMPLES / "requests").glob("seed002-*.json")):
        documented = _load(EXAMPLES / "responses" / path.name)
        request = _load(path) | {"includeCost": True}
        item = api.post("/v1", json=[request]).json()["data"][0]
        assert item["cost"] == documented["cost"], path.name
        assert set(documented) <= set(item), path.name
        assert item["imageURL"].split("?")[0].endswith(f"/image/ws/2/ii/{item['imageUUID']}.jpg")


@pytest.mark.parametrize("path", sorted((EXAMPLES / "responses").glob("*.json")), ids=lambda p: p.stem)
def test_documented_responses_are_valid(path: Path) -> None:
    schema = next(name for prefix, name in RESPONSE_SCHEMAS.items() if path.name.startswith(prefix))
    report = SCHEMAS.validate(schema, _load(path))
    assert report.ok, report.violations


@pytest.mark.parametrize("path", sorted((EXAMPLES / "invalid").glob("*.json")), ids=lambda p: p.stem)
def test_documented_invalid_tasks_get_runware_400s(api: httpx.Client, path: Path) -> None:
    case = _load(path)
    body = _expand(case["body"])
    response = api.post("/v1", json=[body])
    assert response.status_code == 400, response.text
    answer = response.json()
    assert SCHEMAS.validate("response/envelope", answer).ok, answer
    assert "data" not in answer and len(answer["errors"]) == 1
    error = answer["errors"][0]
    assert {"code": error["code"], "parameter": error.get("parameter")} == case["expect"], error
    assert error["taskUUID"] == body["taskUUID"]
