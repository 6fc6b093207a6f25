"""Invalid bodies worded once: a repeated invalid body is answered from the violations worded the first time
(simulator.validation, SchemaSet.validate), and the answer is byte for byte what the detailed validator gives."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from support_examples import SLUGS, documented_bodies

from simulator import validation
from simulator.sim import Simulator
from simulator.validation import SchemaSet, schema_set


def _invalid_examples(slug: str) -> list[tuple[str, str, object]]:
    """(file, schema, body) for each documented example some request schema refuses."""
    schemas = schema_set(slug)
    return [(file, name, body) for file, body in documented_bodies(slug) for name in schemas.names()
            if name.startswith("request/") and not schemas.accepts(name, body)]


@pytest.mark.parametrize("slug", SLUGS)
def test_a_remembered_invalid_body_gets_the_violations_the_detailed_validator_gives(slug: str) -> None:
    schemas = SchemaSet(slug)
    examples = _invalid_examples(slug)
    assert examples
    for file, name, body in examples:
        first = schemas.validate(name, body).violations
        again = schemas.validate(name, json.loads(json.dumps(body))).violations  # an equal body, parsed anew
        assert again == first == schemas._worded_violations(name, body), f"{file} against {name}"
        assert again is not first  # each caller has its own list


def test_values_json_schema_tells_apart_are_not_confused() -> None:
    schemas = SchemaSet("civitai")
    name = "request/workflow-template"

    def body(ratio: object) -> dict[str, object]:
        return {"steps": [{"$type": "imageGen", "input": {"engine": "google", "model": "nano-banana-2", "prompt": "x",
                                                          "aspectRatio": ratio}}]}

    messages = {}
    for ratio in (1, 1.0, True, "1", [1], (1,)):
        violations = schemas.validate(name, body(ratio)).violations
        assert violations == schemas._worded_violations(name, body(ratio))
        messages[repr(ratio)] = [v.message for v in violations]
    assert messages["1"] != messages["True"] != messages["1.0"]


def test_the_remembered_bodies_are_bounded() -> None:
    schemas = SchemaSet("qingbo")
    name = "request/task-en"
    for n in range(validation.REMEMBERED_INVALID + 20):
        assert not schemas.validate(name, {"model": "gemini-3.1-flash-image-preview", "prompt": "x",
                                           "aspect_ratio": f"{n}:7"}).ok
    assert len(schemas._worded) == validation.REMEMBERED_INVALID
    large = {"model": "gemini-3.1-flash-image-preview", "prompt": "x" * validation.MAX_REMEMBERED_BODY,
             "aspect_ratio": "16:10"}
    assert not schemas.validate(name, large).ok
    assert all(len(shape) <= validation.MAX_REMEMBERED_BODY for _, shape in schemas._worded)


def _exchange_twice(clear_between: bool) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    """The same invalid Civitai body sent twice to a fresh simulator (seed 7): status, headers, body of each."""
    body = {"steps": [{"$type": "imageGen", "input": {"engine": "google", "model": "nano-banana-2", "prompt": "a cat",
                                                      "aspectRatio": "16:10", "unknownField": 1}}]}

    async def run() -> list[tuple[int, list[tuple[str, str]], bytes]]:
        sim = Simulator(seed=7)
        seen = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="http://sim") as client:
            for _ in range(2):
                if clear_between:
                    schema_set("civitai")._worded.clear()
                answer = await client.post("/civitai/v2/consumer/workflows", json=body,
                                           headers={"Authorization": "Bearer sk-test"})
                headers = [(k, v) for k, v in answer.headers.items() if k != "date"]
                seen.append((answer.status_code, headers, answer.content))
        return seen

    schema_set("civitai")._worded.clear()
    return asyncio.run(run())


def test_a_repeated_invalid_submit_is_answered_byte_for_byte_as_a_fresh_one() -> None:
    remembered = _exchange_twice(clear_between=False)
    fresh = _exchange_twice(clear_between=True)
    assert remembered == fresh
    assert remembered[0][0] == 400 and b"aspectRatio" in remembered[0][2]
