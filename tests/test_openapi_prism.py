"""Every provider's OpenAPI export runs in Prism 5, the mock server the README points users to.

Prism parses and dereferences the whole document at start-up, then answers each request from the documented
responses. As shipped before, schemas whose `$ref` pointed into their own `$defs` overflowed its stack on
Civitai and gave empty bodies on qingbo; these tests start Prism on each export and send it every documented
request example and a read of each resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support_prism import EnvironmentUnavailable, PrismServer, prism_executable

from simulator.openapi import openapi_document
from simulator.providers import available

pytestmark = pytest.mark.slow
SLUGS = available()


@pytest.fixture(scope="module")
def prisms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, dict[str, Any]]]]:
    """Prism on every provider's export, started side by side: {slug: (base URL, document)}."""
    try:
        prism_executable()
    except EnvironmentUnavailable as exc:
        pytest.skip(f"Prism 5 is not available here: {exc}")
    folder = tmp_path_factory.mktemp("prism")
    documents = {slug: openapi_document(slug) for slug in SLUGS}
    servers = {slug: PrismServer(document, folder) for slug, document in documents.items()}
    try:
        yield {slug: (server.wait(), documents[slug]) for slug, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


def auth(document: dict[str, Any]) -> dict[str, str]:
    scheme = next(iter(document["components"]["securitySchemes"].values()))
    if scheme["type"] == "apiKey":
        return {scheme["name"]: "sk-prism"}
    return {"Authorization": "Bearer sk-prism"}


def is_json(media: str) -> bool:
    """JSON proper: not JSON Lines (Prism has no serializer for it) nor an event stream."""
    return media == "application/json" or media.endswith("+json")


def assert_documented_json(answer: httpx.Response, operation: dict[str, Any], what: str) -> None:
    assert 200 <= answer.status_code < 300, f"{what}: {answer.status_code} {answer.text[:500]}"
    documented = operation["responses"].get(str(answer.status_code), {}).get("content", {})
    if "text/event-stream" in documented:
        return  # a streamed operation: Prism mocks no event stream, and answers it with an empty body
    if any(is_json(media) for media in documented):
        assert answer.content, f"{what}: Prism answered {answer.status_code} with an empty body"
        answer.json()


@pytest.mark.parametrize("slug", SLUGS)
def test_prism_serves_every_documented_request_example(
    slug: str, prisms: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    base, document = prisms[slug]
    sent = 0
    with httpx.Client(base_url=base, headers=auth(document), timeout=30) as client:
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                for media, content in operation.get("requestBody", {}).get("content", {}).items():
                    for name, example in content.get("examples", {}).items():
                        # Accept: an operation that also streams (SSE) is checked on its JSON answer.
                        answer = client.request(method, fill(path, operation), json=example["value"],
                                                headers={"Content-Type": media, "Accept": "application/json"})
                        assert_documented_json(answer, operation, f"{slug} {operation['operationId']} {name}")
                        sent += 1
    assert sent, f"{slug}: the export attaches no request example"


@pytest.mark.parametrize("slug", SLUGS)
def test_prism_answers_every_read_with_a_documented_body(
    slug: str, prisms: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    base, document = prisms[slug]
    with httpx.Client(base_url=base, headers=auth(document), timeout=30) as client:
        for path, operations in document["paths"].items():
            operation = operations.get("get")
            success = next((response for status, response in (operation or {}).get("responses", {}).items()
                            if status.startswith("2")), {})
            media_types = success.get("content", {})
            if not media_types or not all(is_json(media) for media in media_types):
                continue  # image bytes, JSON Lines (Prism serializes neither), redirects: no JSON-only body to check
            answer = client.get(fill(path, operation))
            assert_documented_json(answer, operation, f"{slug} GET {path}")


def fill(path: str, operation: dict[str, Any]) -> str:
    """`path` with each parameter given a value its schema accepts (a pattern's literal prefix, then `sim-1`, or
    `sim1` where a hyphen is not allowed)."""
    schemas = {param["name"]: param["schema"] for param in operation.get("parameters", []) if param["in"] == "path"}

    def value(match: re.Match[str]) -> str:
        pattern = schemas.get(match.group(1), {}).get("pattern", "")
        prefix = re.match(r"\^([\w-]*)", pattern)
        start = prefix.group(1) if prefix else ""
        fitting = [text for text in (start + "sim-1", start + "sim1") if re.search(pattern, text)]
        assert fitting, f"no value for {match.group(0)} matching {pattern!r}"
        return fitting[0]

    return re.sub(r"\{([^}]+)\}", value, path)


def test_exports_keep_no_nested_definitions() -> None:
    # What Prism choked on: a reference into a component's own `$defs`.
    for slug in SLUGS:
        text = str(openapi_document(slug))
        assert "/$defs/" not in text.replace("$defs entr", ""), slug
