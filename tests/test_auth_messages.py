"""A request without credentials is told which header the provider reads, on every route that needs one.

The routes come from each provider's own OpenAPI export (so a new route or provider is covered without a new
line here), the header from `apiKeyHeader` in its provider.json (else `Authorization: Bearer`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from conftest import server_fixture

from simulator.live import LiveServer
from simulator.openapi import openapi_document
from simulator.options import provider_data
from simulator.providers import available

server = server_fixture()


def _header(slug: str) -> str:
    return str(provider_data(slug).get("apiKeyHeader") or "Authorization: Bearer")


def _expected(slug: str, path: str) -> tuple[int, str]:
    """401 naming the key's header, unless provider.json `missingCredential` says how the provider words it
    (Google: 403 "… Please use API Key …", and 401 asking for an OAuth token on Vertex AI's project paths)."""
    for rule in provider_data(slug).get("missingCredential", []):
        if rule.get("pathContains", "") in path:
            return int(rule["status"]), str(rule["mentions"])
    return 401, _header(slug)


def _first_example_without_a_key(operation: dict[str, Any]) -> Any:
    """A documented body that carries no key of its own (Runware also takes one in an authentication task)."""
    examples = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("examples", {})
    return next(
        (example["value"] for example in examples.values() if "apikey" not in json.dumps(example["value"]).lower()),
        {},
    )


def _guarded_operations() -> list[Any]:
    cases = []
    for slug in available():
        document = openapi_document(slug, server_url="http://sim")
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if not isinstance(operation, dict):
                    continue
                security = operation.get("security", document.get("security", []))
                if not security or method == "head":  # a signed link is its own credential; HEAD has no body to read
                    continue
                body = _first_example_without_a_key(operation) if method in ("post", "put", "patch") else None
                cases.append(pytest.param(slug, method.upper(), path, body, id=f"{slug}-{method}-{path}"))
    return cases


@pytest.mark.parametrize(("slug", "method", "path", "body"), _guarded_operations())
def test_missing_credentials_name_the_header(server: LiveServer, slug: str, method: str, path: str, body: Any) -> None:
    url = server.provider_url(slug) + re.sub(r"\{[^}]+\}", "sim-missing", path)
    answer = httpx.request(method, url, json=body)
    status, header = _expected(slug, path)
    assert answer.status_code == status, answer.text
    assert header.lower() in answer.text.lower(), f"{slug} {method} {path}: {answer.text} does not name {header}"
