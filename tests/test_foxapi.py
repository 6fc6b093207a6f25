"""FoxAPI / AIHubMax specifics (seed 004, FoxAPI dossier): strict 422s, Content-Type, output_format, options.

The behaviour both gateway providers share is in test_gateway_contract.py.
"""

from __future__ import annotations

import io

import httpx
from conftest import server_fixture
from PIL import Image
from test_gateway_support import FLASH, PRO, Gateway, gateway_fixture, image_data_url

from simulator.control_client import ControlClient
from simulator.images import pixel_size
from simulator.live import LiveServer

SLUG = "foxapi"

server = server_fixture(SLUG)
fox = gateway_fixture(SLUG, name="fox")


def test_documented_error_bodies_carry_message_and_type_only(fox: Gateway) -> None:
    unauthorized = httpx.post(fox.url("create"), json=fox.body())
    assert unauthorized.json() == {
        "error": {"message": "Invalid API key: send it as 'Authorization: Bearer <API key>'",
                  "type": "authentication_error"}
    }
    missing = fox.detail("task-unified-1767225600-aaaaaaaa")
    assert missing.json() == {"error": {"message": "task not found", "type": "not_found"}}


def test_a_body_not_sent_as_json_is_a_400(fox: Gateway) -> None:
    response = fox.http.post(fox.path("create"), data={"model": FLASH, "prompt": "p"})
    error = fox.error(response, "bad_content_type")
    assert "application/x-www-form-urlencoded" in error["message"]


def test_validation_is_a_422_listing_every_violation_in_pydantic_words(fox: Gateway) -> None:
    response = fox.create({"model": FLASH, "prompt": "", "aspect_ratio": "7:3", "size": "16:9"})
    error = fox.error(response, "invalid_request")
    assert response.status_code == 422
    assert error["type"] == "invalid_request_error"
    assert "code" not in error
    assert error["message"].split("; ") == [
        "aspect_ratio: Input should be one of: 1:1, 1:4, 1:8, 2:3, 3:2, 3:4, 4:1, 4:3, 4:5, 5:4, 8:1, 9:16, 16:9, "
        "21:9, match_input_image (got '7:3')",
        "prompt: String should have at least 1 character",
        "size: Extra inputs are not permitted",
    ]


def test_the_422_type_follows_the_named_option(fox: Gateway, control: ControlClient) -> None:
    control.set_options(SLUG, validation_error_type="validation_error")
    error = fox.error(fox.create({"model": FLASH}), "invalid_request")
    assert error["type"] == "validation_error"


def test_an_unknown_model_is_model_not_found(fox: Gateway) -> None:
    error = fox.error(fox.create({"model": "gemini-2.5-flash-image", "prompt": "p"}), "invalid_request")
    assert error["code"] == "model_not_found"
    assert "gemini-2.5-flash-image" in error["message"]


def test_image_search_on_pro_is_an_unsupported_advanced_option(fox: Gateway) -> None:
    error = fox.error(fox.create(fox.body(model=PRO, image_search=True)), "unsupported_options")
    assert error["code"] == "unsupported_advanced_options"
    assert "image_search" in error["message"]
    fox.created(model=PRO, image_search=False)
    fox.created(model=FLASH, image_search=True, google_search=True)


def test_unknown_fields_are_refused_unless_the_option_ignores_them(fox: Gateway, control: ControlClient) -> None:
    body = {**fox.body(), "n": 2, "callback_url": "https://example.com/hook"}
    fox.error(fox.create(body), "invalid_request")
    control.set_options(SLUG, unknown_fields="ignore")
    created = fox.created(n=2, callback_url="https://example.com/hook")
    [entry] = control.journal(provider=SLUG, operation="CreateImageGeneration", status=200)
    assert entry["note"] == "ignored undocumented fields: callback_url, n"
    assert [(field["path"], field["rule"]) for field in entry["ignored"]] == [
        ("callback_url", "additionalProperties"), ("n", "additionalProperties")]
    assert entry["task_id"] == created["id"]


def test_an_unusable_image_is_invalid_image_url_or_a_failed_task(fox: Gateway, control: ControlClient) -> None:
    broken = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
    error = fox.error(fox.create(fox.body(images=["https://example.com/ok.png", broken])), "invalid_request")
    assert error["code"] == "invalid_image_url"
    assert error["message"].startswith("image_urls[1]: ")
    control.set_options(SLUG, invalid_image_handling="fail_task")
    created = fox.created(images=[broken])
    control.advance(200)
    detail = fox.task(created["id"])
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "invalid_image_url"
    assert detail["results"] is None


def test_output_format_and_the_512_tier(fox: Gateway, control: ControlClient) -> None:
    created = fox.created(tier="512", ratio="4:3", format="webp")
    control.advance(200)
    [url] = fox.result_urls(fox.task(created["id"]))
    assert ".webp?" in url
    picture = Image.open(io.BytesIO(httpx.get(url).content))
    assert (picture.format, picture.size) == ("WEBP", pixel_size("gemini-3.1-flash-image", "4:3", "0.5K"))


def test_match_input_image_on_pro_picks_from_pros_ratios(fox: Gateway, control: ControlClient) -> None:
    created = fox.created(model=PRO, ratio="match_input_image", images=[image_data_url(100, 400, "JPEG")])
    [image] = control.task(created["id"])["outputs"]
    # 1:4 is not a Pro ratio; the nearest Pro ratio to a 1:4 picture is 9:16.
    assert (image["width"], image["height"]) == pixel_size("gemini-3-pro-image", "9:16", "1K")


def test_task_detail_shape_while_pending_and_sync_upstream_is_accepted(fox: Gateway) -> None:
    created = fox.created()
    detail = fox.detail(created["id"], params={"sync_upstream": "true"}).json()
    assert list(detail) == [
        "id", "object", "type", "model", "status", "progress", "created", "results", "error", "usage",
    ]
    assert detail["results"] is None and detail["error"] is None
    assert detail["usage"] == {"credits_reserved": 3, "user_group": "default"}


def test_another_keys_task_is_not_found(fox: Gateway, server: LiveServer) -> None:
    created = fox.created()
    other = Gateway(server, SLUG, token="sk-other")
    other.error(other.detail(created["id"]), "task_not_found")
    other.close()


def test_no_callbacks_are_sent(fox: Gateway, control: ControlClient) -> None:
    fox.created()
    control.advance(200)
    assert control.journal(kind="webhook") == []
