"""The contract both task-unified gateway providers keep, each with its own data (FoxAPI/AIHubMax, Evolink).

Every test runs for both slugs; expectations come from each provider's `provider.json`, schemas and
documented examples (schemas/<slug>/examples), so the same test checks two different wire formats.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import server_fixture
from jsonschema import Draft202012Validator
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from test_gateway_support import (
    FLASH,
    PRO,
    SLUGS,
    TOKEN,
    Gateway,
    examples,
    gateway_fixture,
    image_data_url,
    load,
    violations,
)

from simulator.control_client import ControlClient
from simulator.examples import expand
from simulator.images import pixel_size
from simulator.live import LiveServer
from simulator.resources import schemas_dir
from simulator.validation import BASE_URI

DAY = 86400
REQUEST = "request/image-generation"

# Documented examples that leave out fields the response schema requires: only `required` may fail.
ABBREVIATED = {
    ("evolink", "err-failed-task.json"): "ERR's failed-task example leaves out error.type (TASK: always task_error)",
}

server = server_fixture(*SLUGS)
gw = gateway_fixture(*SLUGS)


def _response_schema(document: dict[str, Any]) -> str:
    if set(document) == {"error"}:
        return "response/error"
    if "data" in document:
        return "response/credits"
    return "response/create-task" if "estimated_time" in document.get("task_info", {}) else "response/task-detail"


def _finish(control: ControlClient, seconds: float = 200) -> None:
    control.advance(seconds)


# --------------------------------------------------------------------------- schema files


def _schema_files(slug: str) -> list[Path]:
    root = schemas_dir() / slug
    paths = sorted(p for p in root.rglob("*.json") if "examples" not in p.relative_to(root).parts)
    return [p for p in paths if "$schema" in load(p)]


@pytest.mark.parametrize("slug", SLUGS)
def test_schema_files_are_draft_2020_12_with_their_ids(slug: str) -> None:
    documents = [load(p) for p in _schema_files(slug)]
    assert len(documents) == 5
    registry: Registry[Any] = Registry().with_resources(
        (d["$id"], Resource.from_contents(d, default_specification=DRAFT202012)) for d in documents
    )
    for path, document in zip(_schema_files(slug), documents, strict=True):
        assert document["$id"] == f"{BASE_URI}{slug}/{path.relative_to(schemas_dir() / slug).as_posix()}"
        Draft202012Validator.check_schema(document)
        text = json.dumps(document)
        for reference in re.findall(r'"\$ref": "([^"]+)"', text):
            registry.resolver(base_uri=document["$id"]).lookup(reference)


# --------------------------------------------------------------------------- documented examples


def _example_ids(kind: str) -> list[Any]:
    return [pytest.param(slug, path, id=f"{slug}/{path.name}") for slug in SLUGS for path in examples(slug, kind)]


@pytest.mark.parametrize(("slug", "path"), _example_ids("requests"))
def test_documented_request_is_valid(slug: str, path: Path) -> None:
    assert violations(slug, REQUEST, load(path)) == []


@pytest.mark.parametrize(("slug", "path"), _example_ids("responses"))
def test_documented_response_is_valid(slug: str, path: Path) -> None:
    document = load(path)
    found = violations(slug, _response_schema(document), document)
    if (slug, path.name) in ABBREVIATED:
        assert found and {rule for _, rule in found} == {"required"}, found
    else:
        assert found == []


@pytest.mark.parametrize(("slug", "path"), _example_ids("invalid"))
def test_documented_invalid_request_is_refused(slug: str, path: Path, server: LiveServer, control: Any) -> None:
    case = load(path)
    assert set(case) == {"description", "doc", "body", "expect"}
    body = expand(case["body"])
    expect = case["expect"]
    assert violations(slug, REQUEST, body) == [(expect["path"], expect["rule"])], case["description"]
    gw = Gateway(server, slug)
    response = gw.create(body)
    error = gw.error(response, "invalid_request")
    assert response.status_code == expect["status"]
    assert expect["path"] in error["message"] or expect["path"].split(".")[-1] in error["message"]
    [entry] = control.journal(provider=slug, kind="http")
    assert entry["violations"][0]["path"] == expect["path"]
    gw.close()


@pytest.mark.parametrize(("slug", "path"), _example_ids("requests"))
def test_documented_request_sent_as_written_succeeds(slug: str, path: Path, server: LiveServer, control: Any) -> None:
    gw = Gateway(server, slug)
    response = gw.create(load(path))
    assert response.status_code == 200, response.text
    created = response.json()
    gw.check("response/create-task", created)
    assert created["status"] == "pending" and created["progress"] == 0
    _finish(control)
    detail = gw.task(created["id"])
    assert detail["status"] == "completed"
    assert len(gw.result_urls(detail)) == 1
    gw.close()


# --------------------------------------------------------------------------- lifecycle on the clock


def test_lifecycle_pending_processing_completed(gw: Gateway, control: ControlClient) -> None:
    created = gw.created(tier="1K")
    task_id = created["id"]
    start = control.now()
    assert re.fullmatch(rf"task-unified-{int(start)}-[a-z0-9]{{8}}", task_id)
    assert created["created"] == int(start)
    assert created["task_info"]["can_cancel"] is True
    seen: list[tuple[str, int]] = []
    for _ in range(40):
        detail = gw.task(task_id)
        seen.append((detail["status"], detail["progress"]))
        if detail["status"] == "completed":
            break
        control.advance(2)
    statuses = [status for status, _ in seen]
    assert statuses[0] == "pending"
    assert "processing" in statuses and statuses[-1] == "completed"
    assert statuses == sorted(statuses, key=["pending", "processing", "completed"].index)
    progress = [p for status, p in seen if status == "processing"]
    assert progress == sorted(progress) and all(0 <= p <= 99 for p in progress)
    assert seen[-1][1] == 100
    low, high = gw.data["models"][FLASH]["seconds"]["1K"]
    assert low <= control.now() - start <= high + 2
    final = gw.task(task_id)
    assert final["created"] == created["created"] and final["model"] == FLASH
    assert final.get("task_info", {"can_cancel": False})["can_cancel"] is False
    assert final.get("error") is None


def test_same_seed_same_ids_and_timings(gw: Gateway, control: ControlClient) -> None:
    first = gw.created()["id"]
    control.reset(seed=0)
    assert gw.created()["id"] == first
    control.reset(seed=7)
    assert gw.created()["id"] != first


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("model", "ratio", "tier", "family_tier"),
    [(FLASH, "16:9", "1K", "1K"), (FLASH, "1:4", "0.5K", "0.5K"), (PRO, "21:9", "1K", "1K")],
)
def test_result_downloads_at_the_table_size(
    gw: Gateway, control: ControlClient, model: str, ratio: str, tier: str, family_tier: str
) -> None:
    created = gw.created(model=model, ratio=ratio, tier=tier)
    _finish(control)
    [url] = gw.result_urls(gw.task(created["id"]))
    image = httpx.get(url)
    assert image.status_code == 200
    family = gw.data["models"][model]["sizeFamily"]
    picture = Image.open(io.BytesIO(image.content))
    assert picture.size == pixel_size(family, ratio, family_tier)
    expected = gw.data["options"]["default_output_format"]["default"]
    assert picture.format == {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[expected]
    assert image.headers["content-type"] == f"image/{'jpeg' if expected == 'jpg' else expected}"


def test_result_links_expire_after_24_hours_and_refuse_tampering(gw: Gateway, control: ControlClient) -> None:
    created = gw.created()
    _finish(control)
    detail = gw.task(created["id"])
    [url] = gw.result_urls(detail)
    finished = control.task(created["id"])
    expires = int(re.search(r"expires=(\d+)", url).group(1))  # type: ignore[union-attr]
    assert expires == int(finished["timeline"]["finished_at"] + DAY)
    assert httpx.get(url.replace("signature=", "signature=x")).status_code == 403
    assert httpx.get(re.sub(r"signature=[^&]*", "signature=%C3%A9t%C3%A9", url)).status_code == 403  # non-ASCII
    control.advance_to(expires - 1)
    assert httpx.get(url).status_code == 200
    assert gw.result_urls(gw.task(created["id"])) == [url]  # links are fixed at completion, not per read
    control.advance(2)
    refused = httpx.get(url)
    assert refused.status_code == 403 and b"AccessDenied" in refused.content


def test_match_input_ratio_follows_a_decoded_first_image(gw: Gateway, control: ControlClient) -> None:
    match = gw.card["matchInputRatios"][0]
    created = gw.created(ratio=match, tier="1K", images=[image_data_url(300, 200), "https://example.com/b.png"])
    _finish(control)
    [url] = gw.result_urls(gw.task(created["id"]))
    size = Image.open(io.BytesIO(httpx.get(url).content)).size
    assert size == pixel_size("gemini-3.1-flash-image", "3:2", "1K")


def test_match_input_ratio_for_an_unfetched_url_uses_the_named_fallback(gw: Gateway, control: ControlClient) -> None:
    match = gw.card["matchInputRatios"][0]

    def output_size(task_id: str) -> tuple[int, int]:
        [image] = control.task(task_id)["outputs"]
        return image["width"], image["height"]

    first = gw.created(ratio=match, tier="1K", images=["https://example.com/portrait.jpg"])
    assert output_size(first["id"]) == pixel_size("gemini-3.1-flash-image", "1:1", "1K")
    control.set_options(gw.slug, match_ratio_fallback="9:16")
    second = gw.created(ratio=match, tier="1K")
    assert output_size(second["id"]) == pixel_size("gemini-3.1-flash-image", "9:16", "1K")


# --------------------------------------------------------------------------- auth


def test_missing_or_unknown_keys_get_the_providers_401(gw: Gateway, control: ControlClient, server: LiveServer) -> None:
    anonymous = httpx.Client(base_url=server.provider_url(gw.slug))
    routes = gw.card["routes"]
    gw.error(anonymous.post(gw.path("create"), json=gw.body()), "missing_auth", routes["create"]["operation"])
    task_path = gw.path("task", task_id="task-unified-1-abcdefgh")
    gw.error(anonymous.get(task_path), "missing_auth", routes["task"]["operation"])
    gw.error(anonymous.get(gw.path("credits")), "missing_auth", routes["credits"]["operation"])
    basic = anonymous.post(gw.path("create"), json=gw.body(), headers={"Authorization": f"Basic {TOKEN}"})
    assert "Authorization: Bearer" in gw.error(basic, "missing_auth")["message"]  # told the scheme it reads
    control.set_tokens(gw.slug, ["sk-good"])
    gw.error(gw.create(gw.body()), "unauthorized")
    good = Gateway(server, gw.slug, token="sk-good")
    good.created()
    good.close()
    anonymous.close()


# --------------------------------------------------------------------------- credits


def test_empty_wallet_gets_the_documented_402_and_creates_nothing(gw: Gateway, control: ControlClient) -> None:
    control.set_balance(gw.slug, TOKEN, 0)
    gw.error(gw.create(gw.body()), "insufficient_credits")
    assert control.tasks(gw.slug) == []
    assert control.balance(gw.slug, TOKEN) == 0


def test_credits_are_reserved_per_model_and_tier_and_reported(gw: Gateway, control: ControlClient) -> None:
    control.set_balance(gw.slug, TOKEN, 100)
    prices = gw.data["models"][PRO]["credits"]
    created = gw.created(model=PRO, tier="4K")
    assert created["usage"]["credits_reserved"] == prices["4K"]
    credits = gw.credits()
    assert credits["data"]["token"]["used_credits"] == pytest.approx(prices["4K"])
    assert credits["data"]["user"]["remaining_credits"] == pytest.approx(100 - prices["4K"])
    assert credits["success"] is True


# --------------------------------------------------------------------------- content block


def test_a_blocked_prompt_fails_with_the_providers_code_and_is_refunded(gw: Gateway, control: ControlClient) -> None:
    control.set_balance(gw.slug, TOKEN, 50)
    created = gw.created(prompt="a banana [sim:block]")
    assert created["status"] == "pending"
    _finish(control)
    detail = gw.task(created["id"])
    failure = gw.card["failures"]["blocked"]
    assert detail["status"] == "failed"
    assert detail["progress"] == gw.card["progress"]["failed"]
    assert detail["error"] == {"code": failure["code"], "message": failure["message"], "type": "task_error"}
    assert detail.get("results") is None
    assert control.balance(gw.slug, TOKEN) == 50
    assert gw.credits()["data"]["token"]["used_credits"] == 0


# --------------------------------------------------------------------------- other errors


def test_body_that_is_not_json_is_a_400(gw: Gateway) -> None:
    response = gw.http.post(gw.path("create"), content=b"{not json", headers={"content-type": "application/json"})
    gw.error(response, "invalid_json")


def test_unknown_task_and_unknown_route_use_the_providers_404(gw: Gateway) -> None:
    gw.error(gw.detail("task-unified-1767225600-zzzzzzzz"), "task_not_found")
    gw.error(gw.http.get("/v1/nothing/here"), "route_not_found")
    gw.error(gw.http.delete(gw.path("create")), "route_not_found")


def test_a_model_the_key_may_not_use_gets_the_documented_refusal(gw: Gateway, control: ControlClient) -> None:
    control.set_options(gw.slug, denied_models=[PRO])
    error = gw.error(gw.create(gw.body(model=PRO)), "model_access_denied")
    assert PRO in error["message"]
    gw.created(model=FLASH)


def test_results_lag_rehearses_completed_without_results(gw: Gateway, control: ControlClient) -> None:
    control.set_options(gw.slug, results_lag_seconds=5)
    created = gw.created()
    finished_at = control.task(created["id"])["timeline"]["finished_at"]
    control.advance_to(finished_at + 1)
    lagging = gw.task(created["id"])
    assert lagging["status"] == "completed"
    assert lagging["progress"] == gw.card["progress"]["lagging"]
    assert lagging.get("results") is None
    control.advance(5)
    assert len(gw.result_urls(gw.task(created["id"]))) == 1


def test_the_real_hostnames_reach_the_provider_at_the_root(gw: Gateway, server: LiveServer) -> None:
    for host in gw.data["hosts"]:
        response = httpx.post(
            f"{server.url}{gw.path('create')}", json=gw.body(),
            headers={"Host": host, "Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 200, (host, response.text)
