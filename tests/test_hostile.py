"""The hostile-input table (issue 10), against `nanobanana-sim serve` as users install it.

One server, started from the project's wheel in a fresh virtualenv (the same cached one the installed-plugin
tests use; the checkout's own console script where no wheel can be built), takes every case of
tests/support_hostile.py: more than 80 per provider, the result links and the control plane. Each case asserts
what the client sees (the status tests/hostile/providers.yaml gives, and the provider's own error envelope,
or the HTTP parser's plain 400 for what never reaches an application), that the server still answers
afterwards, and that the exchange is in the journal.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from support_cli import CLI, Served, environment
from support_envs import EnvironmentUnavailable, project_wheel, python_env
from support_hostile import (
    CASE_HEADER,
    Case,
    Request,
    Response,
    control_cases,
    link_cases,
    provider_cases,
    send,
    table,
)

from simulator.providers import available

TABLE = table()
PROVIDER_CASES = provider_cases()
KEY = "hostile-key"
JOURNAL_WAIT = 5.0  # an exchange whose client left is journaled once the pipeline has answered it
PARSER_REFUSAL = b"Invalid HTTP request received."
CONTROL_READS = ("/", "/clock", "/faults", "/limits", "/credits", "/moderation", "/options/civitai", "/journal?limit=1",
                 "/scenarios", "/self-check")


def _cli() -> Path:
    try:
        return python_env([project_wheel(), "pytest>=8"], name="plugin-user").with_name("nanobanana-sim")
    except EnvironmentUnavailable:
        return CLI


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    command = [str(_cli()), "serve", "--port", "0", "--seed", "1", "--virtual-clock", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment(), cwd=Path(__file__).parent)
    served = Served(process)
    try:
        served.read_banner()
        yield served
    finally:
        served.stop()


def _address(server: Served) -> tuple[str, int]:
    parts = urlsplit(server.base)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _call(server: Served, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.base + path, data=data, method=method,
                                     headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _expected(statuses: dict[Any, list[str]], name: str) -> int | None:
    found = [status for status, names in statuses.items() if name in names]
    assert len(found) == 1, f"{name} must be in exactly one status group of tests/hostile/providers.yaml: {found}"
    return None if found[0] == "none" else int(found[0])


def _assert_healthy(server: Served) -> None:
    status, info = _call(server, "GET", "/_sim/")
    assert status == 200 and "journal" in info, f"the control plane stopped answering: {status} {info}"


def _assert_journaled(server: Served, case: Case) -> None:
    deadline = time.monotonic() + JOURNAL_WAIT
    while True:
        status, journal = _call(server, "GET", "/_sim/journal?limit=3")
        assert status == 200, f"the journal stopped answering after {case.id}: {status} {journal}"
        if any(entry["request_headers"].get(CASE_HEADER) == case.id for entry in journal["entries"]):
            return
        assert time.monotonic() < deadline, f"{case.id} is not in the journal"
        time.sleep(0.05)


def _assert_parser_refusal(response: Response) -> None:
    assert response.status == 400 and response.body == PARSER_REFUSAL, (response.status, response.body[:200])


def test_every_served_provider_has_a_hostile_table() -> None:
    missing = sorted(set(available()) - set(TABLE["providers"]))
    assert not missing, (f"{missing} are served but have no block in tests/hostile/providers.yaml: add their routes, "
                         "auth, a valid body, their error envelope and the status of each case")


@pytest.mark.parametrize("case", [case for cases in PROVIDER_CASES.values() for case in cases],
                         ids=lambda case: case.id)
def test_a_provider_answers_hostile_input_in_its_own_envelope(server: Served, case: Case) -> None:
    slug, name = case.id.split(":", 1)
    facts = TABLE["providers"][slug]
    response = send(*_address(server), case)
    assert response.status == _expected(facts["statuses"], name), response.body[:300]
    if not case.journaled:
        _assert_parser_refusal(response)
    elif name in facts.get("html", ()):
        assert response.headers.get("content-type", "").startswith("text/html"), response.headers
    elif response.status is not None and case.request.method != "HEAD":
        assert "json" in response.headers.get("content-type", ""), response.headers
        value = response.json()
        if response.status >= 400:
            jsonschema.validate(value, facts["envelope"])
    if case.journaled:
        _assert_journaled(server, case)  # the journal answering is the server answering
    else:
        _assert_healthy(server)


@pytest.fixture(scope="module")
def links(server: Served) -> tuple[str, str]:
    """A qingbo result link and a Civitai blob link, as path and query, of tasks finished on the virtual clock."""
    status, task = _call(server, "POST", "/qingbo/v1/tasks", TABLE["providers"]["qingbo"]["body"])
    assert status == 200, task
    status, workflow = _call(server, "POST", "/civitai/v2/consumer/workflows", TABLE["providers"]["civitai"]["body"])
    assert status == 202, workflow
    assert _call(server, "POST", "/_sim/clock/advance", {"seconds": 600})[0] == 200
    link = _call(server, "GET", f"/qingbo/v1/tasks/{task['task_id']}")[1]["result"]["images"][0]["url"][0]
    blob = _call(server, "GET", f"/civitai/v2/consumer/workflows/{workflow['id']}")[1]["steps"][0]["output"]
    parts, blob_parts = urlsplit(link), urlsplit(blob["images"][0]["url"])
    return f"{parts.path}?{parts.query}", f"{blob_parts.path}?{blob_parts.query}"


LINK_CASE_NAMES = [case.id for case in link_cases("/p?expires=1&signature=s", "/b?sig=s&exp=e")]


@pytest.mark.parametrize("name", LINK_CASE_NAMES)
def test_result_links_refuse_hostile_requests_like_an_object_store(server: Served, links: tuple[str, str],
                                                                   name: str) -> None:
    case = next(case for case in link_cases(*links) if case.id == name)
    response = send(*_address(server), case)
    assert response.status == _expected(TABLE["links"]["statuses"], name.split(":", 1)[1]), response.body[:300]
    if response.status in (301, 302, 307, 308):  # a blob link redirects to its content, where the file name acts
        location = urlsplit(response.headers["location"])
        followed = send(*_address(server), Case(case.id, Request("GET", f"{location.path}?{location.query}")))
        assert followed.status == 200, followed.body[:300]
        disposition = followed.headers["content-disposition"]
        assert not any(character in disposition for character in "\r\n\0") and disposition.isascii(), disposition
        assert disposition.startswith("attachment;") or disposition.startswith("inline;"), disposition
    elif response.status == 403:  # the object store's refusal
        assert response.body.startswith(b"<?xml") and b"<Error><Code>" in response.body, response.body[:300]
    elif response.status == 404:  # no link route serves it: the provider's own 404
        jsonschema.validate(response.json(), TABLE["providers"]["qingbo"]["envelope"])
    _assert_journaled(server, case)


@pytest.mark.parametrize("case", control_cases(), ids=lambda case: case.id)
def test_a_control_call_is_refused_whole_and_breaks_nothing(server: Served, case: Case) -> None:
    spec = next(spec for spec in TABLE["control"] if f"control:{spec['id']}" == case.id)
    response = send(*_address(server), case)
    assert response.status == spec["status"], response.body[:300]
    refusal = response.json()
    assert isinstance(refusal, dict) and isinstance(refusal.get("error"), str), refusal
    for path in CONTROL_READS:
        status, _ = _call(server, "GET", "/_sim" + path)
        assert status == 200, f"GET /_sim{path} answers {status} after {case.id}"
    assert _call(server, "GET", "/_sim/faults")[1]["rules"] == [], "a refused rule was installed"
    assert _call(server, "GET", "/_sim/moderation")[1]["patterns"] != ["(unclosed"]
