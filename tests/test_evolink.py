"""Evolink specifics (Evolink dossier): lenient fields, task-route errors, business failure codes, callbacks.

The behaviour both gateway providers share is in test_gateway_contract.py.
"""

from __future__ import annotations

import io

import httpx
import pytest
from conftest import receiver_fixture, server_fixture
from PIL import Image
from test_gateway_support import FLASH, PRO, Gateway, gateway_fixture

from simulator.control_client import ControlClient
from simulator.images import pixel_size
from simulator.live import LiveServer
from simulator.testing.receiver import WebhookReceiver

SLUG = "evolink"
TASK_OP = "GetTaskDetail"

server = server_fixture(SLUG)
evo = gateway_fixture(SLUG, name="evo")
hook = receiver_fixture("hook")


# --------------------------------------------------------------------------- request fields


def test_defaults_are_auto_and_2K(evo: Gateway, control: ControlClient) -> None:
    created = evo.created()
    assert created["usage"] == {"billing_rule": "per_call", "credits_reserved": 1.6, "user_group": "default"}
    control.advance(200)
    [url] = evo.result_urls(evo.task(created["id"]))
    picture = Image.open(io.BytesIO(httpx.get(url).content))
    assert (picture.format, picture.size) == ("JPEG", pixel_size("gemini-3.1-flash-image", "1:1", "2K"))


def test_undocumented_fields_are_ignored_and_journaled(evo: Gateway, control: ControlClient) -> None:
    body = {**evo.body(model=PRO), "aspect_ratio": "16:9", "model_params": {"web_search": True, "image_search": True}}
    response = evo.create(body)
    assert response.status_code == 200, response.text
    [entry] = control.journal(provider=SLUG, operation="CreateImageGeneration")
    assert entry["note"] == "ignored undocumented fields: aspect_ratio, model_params.image_search"
    # What a client probably meant goes with each ignored field: Evolink's name for the aspect ratio is `size`.
    ignored = {field["path"]: (field["value"], field["nearest"]) for field in entry["ignored"]}
    assert ignored == {"aspect_ratio": ("16:9", "size"), "model_params.image_search": (True, None)}
    [image] = control.task(response.json()["id"])["outputs"]
    assert (image["width"], image["height"]) == pixel_size("gemini-3-pro-image", "1:1", "2K")  # aspect_ratio ignored


def test_the_strict_option_rejects_undocumented_fields(evo: Gateway, control: ControlClient) -> None:
    control.set_options(SLUG, unknown_fields="reject")
    error = evo.error(evo.create({**evo.body(), "resolution": "4K"}), "invalid_request")
    assert error == {
        "code": "invalid_request",
        "message": "Invalid request parameters: unknown parameter 'resolution'",
        "type": "invalid_request_error",
        "param": "resolution",
    }


def test_a_validation_400_names_the_parameter(evo: Gateway) -> None:
    error = evo.error(evo.create(evo.body(model=PRO, tier="0.5K")), "invalid_request")
    assert error["param"] == "quality"
    assert error["message"] == (
        "Invalid request parameters: '0.5K' is not a valid value for 'quality'; supported values: 1K, 2K, 4K"
    )


def test_a_model_without_access_is_the_documented_403(evo: Gateway, control: ControlClient) -> None:
    control.set_options(SLUG, denied_models=[FLASH])
    error = evo.error(evo.create(evo.body()), "model_access_denied")
    assert error["message"] == f"Token does not have access to model: {FLASH}"


def test_empty_wallet_402_body_is_the_documented_one(evo: Gateway, control: ControlClient) -> None:
    control.set_balance(SLUG, "test-token", 0)
    assert evo.create(evo.body()).json() == {"error": {
        "code": "insufficient_quota", "message": "Insufficient quota. Please top up your account.",
        "type": "insufficient_quota",
    }}


# --------------------------------------------------------------------------- task route


def test_task_route_errors(evo: Gateway, server: LiveServer, control: ControlClient) -> None:
    bad = evo.error(evo.detail("12345"), "invalid_task_id")
    assert bad == {
        "code": "invalid_task_id", "message": "Invalid task ID format, must start with 'task-unified-'",
        "type": "invalid_request_error", "param": "task_id",
    }
    evo.error(evo.detail("task-unified-1767225600-aaaaaaaa"), "task_not_found")
    created = evo.created()
    other = Gateway(server, SLUG, token="sk-other")
    forbidden = other.error(other.detail(created["id"]), "task_forbidden")
    assert forbidden["code"] == "permission_denied"
    other.close()
    anonymous = httpx.get(evo.url("task", task_id=created["id"]))
    assert evo.error(anonymous, "missing_auth", TASK_OP)["message"].startswith("Authentication required: send ")
    control.set_tokens(SLUG, ["sk-known"])
    unknown = httpx.get(evo.url("task", task_id=created["id"]), headers={"Authorization": "Bearer sk-unknown"})
    assert evo.error(unknown, "unauthorized", TASK_OP)["message"] == "Authentication required"


def test_detail_leaves_out_what_does_not_apply(evo: Gateway, control: ControlClient) -> None:
    created = evo.created()
    pending = evo.task(created["id"])
    assert list(pending) == ["created", "id", "model", "object", "progress", "status", "task_info", "type"]
    assert pending["task_info"] == {"can_cancel": True}
    control.advance(200)
    done = evo.task(created["id"])
    assert list(done) == ["created", "id", "model", "object", "progress", "results", "status", "task_info", "type"]
    assert isinstance(done["results"][0], str)


def test_an_unusable_image_fails_the_task_with_image_processing_error(evo: Gateway, control: ControlClient) -> None:
    created = evo.created(images=["data:image/png;base64,bm90IGFuIGltYWdl"])
    control.advance(200)
    detail = evo.task(created["id"])
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "image_processing_error"
    assert detail["error"]["message"].startswith("Image processing failed.\nImage 1: ")
    control.set_options(SLUG, invalid_image_handling="reject")
    error = evo.error(evo.create(evo.body(images=["data:image/png;base64,bm90IGFuIGltYWdl"])), "invalid_request")
    assert error["param"] == "image_urls[0]"


# --------------------------------------------------------------------------- callbacks


def _attempts(control: ControlClient, task_id: str) -> list[dict[str, object]]:
    return control.journal(kind="webhook", task_id=task_id)


def test_callback_carries_the_task_query_body_on_completion(
    evo: Gateway, control: ControlClient, hook: WebhookReceiver
) -> None:
    created = evo.created(callback=hook.url)
    control.advance(200)
    [delivery] = hook.requests
    assert delivery.json() == evo.task(created["id"])
    evo.check("response/task-detail", delivery.json())
    assert delivery.headers["content-type"] == "application/json"
    [attempt] = _attempts(control, created["id"])
    assert attempt["detail"] == {"attempt": 1, "event": "completed", "outcome": "delivered"}
    assert attempt["status"] == 200


def test_callback_retries_after_1_2_4_seconds_then_gives_up(
    evo: Gateway, control: ControlClient, hook: WebhookReceiver
) -> None:
    hook.script(500, 502, 503, 504)
    created = evo.created(callback=hook.url)
    finished = control.task(created["id"])["timeline"]["finished_at"]
    control.advance_to(finished)
    assert len(hook.requests) == 1
    control.advance(7)
    attempts = _attempts(control, created["id"])
    assert [a["detail"]["outcome"] for a in attempts] == ["retrying", "retrying", "retrying", "abandoned"]
    assert [round(a["at"] - finished, 3) for a in attempts] == [0, 1, 3, 7]
    assert [a["status"] for a in attempts] == [500, 502, 503, 504]
    assert len(hook.requests) == 4


def test_callback_for_a_blocked_task_reports_the_failure(
    evo: Gateway, control: ControlClient, hook: WebhookReceiver
) -> None:
    hook.script(500)
    created = evo.created(prompt="[sim:block] a banana", callback=hook.url)
    control.advance(200)
    assert len(hook.requests) == 2  # one retry after the 500
    body = hook.requests[-1].json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "content_policy_violation"
    assert [a["detail"]["outcome"] for a in _attempts(control, created["id"])] == ["retrying", "delivered"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "must use HTTPS"),
        ("https://10.1.2.3/hook", "must not point to an internal address"),
        ("https://192.168.0.10/hook", "must not point to an internal address"),
        ("ftp://example.com/hook", "must be an absolute HTTPS URL"),
    ],
)
def test_callback_urls_must_be_public_https(evo: Gateway, url: str, reason: str) -> None:
    error = evo.error(evo.create(evo.body(callback=url)), "invalid_request")
    assert error["param"] == "callback_url"
    assert reason in error["message"]


def test_loopback_callbacks_need_the_named_option(evo: Gateway, control: ControlClient, hook: WebhookReceiver) -> None:
    evo.created(callback=hook.url)
    control.set_options(SLUG, allow_http_callbacks_to_loopback=False)
    error = evo.error(evo.create(evo.body(callback=hook.url)), "invalid_request")
    assert "must use HTTPS" in error["message"]
    https_loopback = evo.create(evo.body(callback="https://127.0.0.1/hook"))
    assert "internal address" in evo.error(https_loopback, "invalid_request")["message"]


def test_public_https_callbacks_are_accepted_and_their_refused_delivery_journaled(
    evo: Gateway, control: ControlClient
) -> None:
    created = evo.created(callback="https://your-domain.com/webhooks/image-task-completed")
    control.advance(200)
    [attempt] = _attempts(control, created["id"])
    assert attempt["detail"]["outcome"] == "refused"
