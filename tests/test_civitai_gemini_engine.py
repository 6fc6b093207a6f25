"""Civitai's `gemini` engine (model `2.5-flash`, operations `createImage` / `editImage`): schema and model card.

Source: Civitai's OpenAPI v2 `GeminiImageGenInput` → `Gemini25FlashImageGenInput` →
`Gemini25Flash{Create,Edit}ImageGenInput`, and seed 000's "Gemini vs Google". The documented 400s are files in
schemas/civitai/examples/invalid/gemini-*.json (checked by test_civitai_schemas.py); this module checks what
must be accepted, the card in provider.json, and one workflow end to end.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import provider_server
from PIL import Image

from simulator.images.sizes import pixel_size
from simulator.live import LiveServer
from simulator.options import provider_data
from simulator.validation import dotted_path, schema_set

TEMPLATE = "request/workflow-template"
GEMINI = {"engine": "gemini", "model": "2.5-flash", "prompt": "A lighthouse on a cliff at dusk"}


def _submit(**fields: Any) -> dict[str, Any]:
    return {"steps": [{"$type": "imageGen", "input": {**GEMINI, **fields}}]}


def _violations(name: str, body: Any) -> list[tuple[str, str]]:
    return [(dotted_path(v.path), v.rule) for v in schema_set("civitai").validate(name, body).violations]


@pytest.mark.parametrize("body", [
    _submit(operation="createImage"),
    _submit(operation="createImage", quantity=4, outputFormat="png", imageMetadata=None),
    _submit(operation="createImage", prompt="p" * 60000),
    _submit(operation="editImage", images=["https://image.civitai.com/x/source.jpeg"]),
    _submit(operation="editImage", images=["data:image/png;base64,AAAA"] * 4, quantity=1, imageMetadata="m"),
], ids=["create", "create-every-field", "long-prompt", "edit-one-image", "edit-four-images"])
def test_documented_gemini_inputs_are_valid(body: dict[str, Any]) -> None:
    assert _violations(TEMPLATE, body) == []


@pytest.mark.parametrize(("body", "expected"), [
    (_submit(operation="createImage", quantity=0), ("steps[0].input.quantity", "minimum")),
    ({"steps": [{"$type": "imageGen", "input": {"engine": "gemini", "model": "2.5-flash", "prompt": "p"}}]},
     ("steps[0].input.operation", "required")),
    (_submit(operation="createImage", prompt=None), ("steps[0].input.prompt", "type")),
    (_submit(operation="createImage", seed=1), ("steps[0].input.seed", "additionalProperties")),
])
def test_other_gemini_refusals(body: dict[str, Any], expected: tuple[str, str]) -> None:
    assert _violations(TEMPLATE, body) == [expected]


def test_the_unknown_operation_keeps_the_dotnet_wording() -> None:
    (violation,) = schema_set("civitai").validate(TEMPLATE, _submit(operation="upscale")).violations
    assert violation.message == "No derived type found for discriminator value 'upscale'"


def test_the_step_echo_accepts_the_gemini_input() -> None:
    step_input = {**GEMINI, "operation": "editImage", "images": ["https://example.com/a.png"], "quantity": 2}
    assert _violations("request/image-gen-input", step_input) == []


def test_the_model_card() -> None:
    card = provider_data("civitai")["models"]["2.5-flash"]
    assert card["engine"] == "gemini" and card["countField"] == "quantity"
    assert pixel_size(card["sizeFamily"], "1:1", card["fixedResolution"]) == (1024, 1024)
    assert set(card["secondsPerImage"]) == set(card["buzzPerImage"]) == {card["fixedResolution"]}


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with provider_server("civitai", autojump=True) as started:
        yield started


def test_a_create_image_workflow_succeeds_with_a_1k_image(server: LiveServer) -> None:
    with httpx.Client(base_url=server.provider_url("civitai"), headers={"Authorization": "Bearer gemini-engine"},
                      verify=False) as client:
        answer = client.post("/v2/consumer/workflows", params={"wait": 60}, json=_submit(operation="createImage"))
        assert answer.status_code == 200, answer.text
        workflow = answer.json()
        assert workflow["status"] == "succeeded" and workflow["cost"]["total"] == 60
        (image,) = workflow["steps"][0]["output"]["images"]
        picture = Image.open(io.BytesIO(client.get(image["url"], follow_redirects=True).content))
        assert picture.size == (1024, 1024)


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 40)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(("fields", "count", "size"), [
    ({"operation": "createImage", "quantity": 3}, 3, (1024, 1024)),
    ({"operation": "editImage", "quantity": 2, "images": [_png(160, 90)]}, 2,
     pixel_size("gemini-2.5-flash-image", "16:9", "1K")),
    ({"operation": "editImage", "images": ["https://image.civitai.com/x/source.jpeg"]}, 1, (1024, 1024)),
], ids=["create-three", "edit-follows-the-source-ratio", "edit-of-a-url-is-square"])
def test_quantity_and_the_edit_ratio(server: LiveServer, fields: dict[str, Any], count: int,
                                     size: tuple[int, int]) -> None:
    with httpx.Client(base_url=server.provider_url("civitai"), headers={"Authorization": "Bearer gemini-engine"},
                      verify=False) as client:
        answer = client.post("/v2/consumer/workflows", params={"wait": 60}, json=_submit(**fields))
        assert answer.status_code == 200, answer.text
        workflow = answer.json()
        assert workflow["status"] == "succeeded" and workflow["cost"]["total"] == 60 * count
        images = workflow["steps"][0]["output"]["images"]
        assert len(images) == count
        for image in images:
            picture = Image.open(io.BytesIO(client.get(image["url"], follow_redirects=True).content))
            assert picture.size == size
