"""End-to-end tests of what the simulated Civitai hands back besides JSON: images, signed blob URLs,
edit-mode inputs and callbacks to a receiver on 127.0.0.1. All timing is on the virtual clock."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Sequence
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from conftest import nb2_body
from PIL import Image
from support_civitai import (
    BLOBS,
    BLOCK,
    VERIFY_TLS,
    assert_problem,
    assert_valid,
    assert_validation_problem,
    first_image,
    get_workflow,
    seconds,
    submit,
    submitted,
    workflow_body,
)

from simulator.control_client import ControlClient
from simulator.images import pixel_size
from simulator.live import LiveServer
from simulator.testing.receiver import WebhookReceiver

NB2_RATIOS = ["21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"]
TIERS = ["1K", "2K", "4K"]


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def downloader() -> Iterator[httpx.Client]:
    """A client without credentials: signed URLs must work on their own."""
    with httpx.Client(verify=VERIFY_TLS) as client:
        yield client


def completed(client: httpx.Client, control: ControlClient, body: dict[str, Any]) -> dict[str, Any]:
    control.set_autojump(True)
    response = submit(client, body, wait=100)
    assert response.status_code == 200, response.text
    assert_valid("response/workflow", response.json())
    return response.json()


def download(downloader: httpx.Client, url: str) -> httpx.Response:
    response = downloader.get(url, follow_redirects=True)
    assert response.status_code == 200, response.text
    return response


def picture(content: bytes) -> Image.Image:
    return Image.open(BytesIO(content))


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def encoded_image(fmt: str, size: tuple[int, int] = (64, 48)) -> str:
    buffer = BytesIO()
    Image.new("RGB", size, (200, 180, 40)).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


# -- output sizes and formats ----------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("ratio", NB2_RATIOS)
def test_nano_banana_2_pixel_sizes(
    civitai: httpx.Client, control: ControlClient, downloader: httpx.Client, ratio: str, tier: str
) -> None:
    image = first_image(completed(civitai, control, nb2_body(aspectRatio=ratio, resolution=tier)))
    response = download(downloader, image["url"])
    expected = pixel_size("gemini-3.1-flash-image", ratio, tier)
    assert picture(response.content).size == expected == (image["width"], image["height"])
    assert picture(response.content).format == "JPEG"
    assert response.headers["content-type"] == "image/jpeg"
    assert image["id"].endswith(".jpg")


@pytest.mark.parametrize(
    ("model", "family", "ratio", "tier"),
    [
        ("imagen4", "imagen-4", "1:1", None),
        ("imagen4", "imagen-4", "16:9", None),
        ("imagen4", "imagen-4", "3:4", None),
        ("nano-banana-pro", "gemini-3-pro-image", "21:9", "1K"),
        ("nano-banana-pro", "gemini-3-pro-image", "4:5", "2K"),
        ("nano-banana-pro", "gemini-3-pro-image", "16:9", "4K"),
    ],
)
def test_imagen4_and_pro_pixel_sizes(
    civitai: httpx.Client, control: ControlClient, downloader: httpx.Client,
    model: str, family: str, ratio: str, tier: str | None,
) -> None:
    extra = {"resolution": tier} if tier else {}
    image = first_image(completed(civitai, control, workflow_body(model, aspectRatio=ratio, **extra)))
    content = download(downloader, image["url"]).content
    assert picture(content).size == pixel_size(family, ratio, tier or "1K") == (image["width"], image["height"])


@pytest.mark.parametrize(
    ("output_format", "pillow_format", "content_type", "extension"),
    [
        ("jpeg", "JPEG", "image/jpeg", ".jpg"),
        ("png", "PNG", "image/png", ".png"),
        ("webP", "WEBP", "image/webp", ".webp"),
    ],
)
def test_output_format_is_honoured(
    civitai: httpx.Client, control: ControlClient, downloader: httpx.Client,
    output_format: str, pillow_format: str, content_type: str, extension: str,
) -> None:
    image = first_image(completed(civitai, control, nb2_body(outputFormat=output_format, aspectRatio="3:2")))
    response = download(downloader, image["url"])
    assert response.headers["content-type"] == content_type
    assert picture(response.content).format == pillow_format
    assert picture(response.content).size == pixel_size("gemini-3.1-flash-image", "3:2", "1K")
    assert image["id"].endswith(extension)


def test_four_images_are_four_distinct_blobs(
    civitai: httpx.Client, control: ControlClient, downloader: httpx.Client
) -> None:
    workflow = completed(civitai, control, nb2_body(numImages=4))
    images = workflow["steps"][0]["output"]["images"]
    assert len(images) == 4
    assert len({image["id"] for image in images}) == 4
    digests = {hashlib.sha256(download(downloader, image["url"]).content).hexdigest() for image in images}
    assert len(digests) == 4


# -- signed blob URLs ------------------------------------------------------------------------------


@pytest.fixture
def image(civitai: httpx.Client, control: ControlClient) -> dict[str, Any]:
    """The first image of a finished nano-banana-2 workflow (the clock is left in manual mode)."""
    found = first_image(completed(civitai, control, nb2_body()))
    control.set_autojump(False)
    return found


@pytest.mark.parametrize("option", [None, 301, 302, 307])
def test_signed_url_redirects_to_the_content(
    control: ControlClient, downloader: httpx.Client, image: dict[str, Any], option: int | None
) -> None:
    if option is not None:
        control.set_options("civitai", blob_redirect_status=option)
    response = downloader.get(image["url"])
    assert response.status_code == (option or 308)
    location = response.headers["location"]
    assert location.startswith(f"/civitai{BLOBS}/content/")
    content = downloader.get(httpx.URL(image["url"]).join(location))
    assert content.status_code == 200 and content.headers["content-type"] == "image/jpeg"
    forged = location[:-3] + ("AAA" if not location.endswith("AAA") else "BBB")
    assert_problem(downloader.get(httpx.URL(image["url"]).join(forged)), 403)


@pytest.mark.parametrize(
    "tamper",
    [
        {"sig": "AAAA"},
        {"exp": "2030-01-01T00:00:00.0000000Z"},
        {"exp": "not a time"},
        {"sig": ""},
        {"sig": "sïgnätüre"},
    ],
    ids=["sig", "exp-later", "exp-garbage", "sig-empty", "sig-non-ascii"],
)
def test_tampered_signed_url_is_403(downloader: httpx.Client, image: dict[str, Any], tamper: dict[str, str]) -> None:
    assert_problem(downloader.get(with_query(image["url"], **tamper)), 403)


def test_expired_url_is_403_until_refreshed(
    civitai: httpx.Client, control: ControlClient, downloader: httpx.Client, image: dict[str, Any]
) -> None:
    expires = seconds(image["urlExpiresAt"])
    control.advance_to(expires - 0.01)
    redirect = downloader.get(image["url"])
    assert redirect.status_code == 308
    control.advance_to(expires)
    assert_problem(downloader.get(image["url"]), 403)
    # The content link the redirect handed out expires as well, on the same clock.
    control.advance(float(control.options("civitai")["url_ttl_seconds"]["value"]))
    assert_problem(downloader.get(redirect.url.join(redirect.headers["location"])), 403)

    response = civitai.post(f"{BLOBS}/{image['id']}/refresh")
    assert response.status_code == 200
    refreshed = response.json()
    assert_valid("response/blob", refreshed)
    assert refreshed["id"] == image["id"] and refreshed["available"] is True
    assert seconds(refreshed["urlExpiresAt"]) > expires
    assert refreshed["url"] != image["url"]
    download(downloader, refreshed["url"])


def test_refetching_the_workflow_gives_a_working_url(
    civitai: httpx.Client, control: ControlClient, downloader: httpx.Client
) -> None:
    workflow = completed(civitai, control, nb2_body())
    old = first_image(workflow)
    control.advance_to(seconds(old["urlExpiresAt"]) + 1)
    assert_problem(downloader.get(old["url"]), 403)
    fresh = first_image(get_workflow(civitai, workflow["id"]).json())
    assert fresh["url"] != old["url"]
    assert seconds(fresh["urlExpiresAt"]) > control.now()
    download(downloader, fresh["url"])


def test_get_blob_with_a_bearer_token(
    civitai: httpx.Client, downloader: httpx.Client, image: dict[str, Any]
) -> None:
    response = civitai.get(f"{BLOBS}/{image['id']}")
    assert response.status_code == 308
    content = civitai.get(response.url.join(response.headers["location"]))
    assert content.status_code == 200
    assert content.content == download(downloader, image["url"]).content
    head = civitai.head(f"{BLOBS}/{image['id']}")
    assert head.status_code == 204 and head.content == b""
    assert_problem(civitai.get(f"{BLOBS}/no-such-blob.jpg"), 404)
    assert civitai.head(f"{BLOBS}/no-such-blob.jpg").status_code == 404
    assert_problem(civitai.post(f"{BLOBS}/no-such-blob.jpg/refresh"), 404)


def test_another_accounts_blob_is_not_found(live_server: LiveServer, image: dict[str, Any]) -> None:
    headers = {"Authorization": "Bearer someone-else"}
    with httpx.Client(base_url=live_server.provider_url("civitai"), headers=headers, verify=VERIFY_TLS) as other:
        assert_problem(other.get(f"{BLOBS}/{image['id']}"), 404)
        assert other.head(f"{BLOBS}/{image['id']}").status_code == 404
        assert_problem(other.post(f"{BLOBS}/{image['id']}/refresh"), 404)


def test_image_not_yet_available_is_404(
    civitai: httpx.Client, control: ControlClient, downloader: httpx.Client
) -> None:
    workflow = submitted(civitai, nb2_body())
    started = control.task(workflow["id"])["timeline"]["started_at"]
    control.advance_to(started + 0.5)
    running = get_workflow(civitai, workflow["id"]).json()
    assert running["status"] == "processing"
    pending = first_image(running)
    assert pending["available"] is False and pending["url"]  # the entry and its link exist before the image
    assert_problem(civitai.get(f"{BLOBS}/{pending['id']}"), 404)
    assert_problem(downloader.get(pending["url"]), 404)
    control.set_autojump(True)
    get_workflow(civitai, workflow["id"], wait=60)
    download(downloader, pending["url"])  # the same link works once the image exists


def test_blocked_blob_is_403(civitai: httpx.Client, control: ControlClient) -> None:
    workflow = completed(civitai, control, nb2_body(prompt=f"{BLOCK} banana"))
    blocked = first_image(workflow)
    assert blocked["available"] is False and not blocked.get("url")
    assert_problem(civitai.get(f"{BLOBS}/{blocked['id']}"), 403)


def test_content_etag_and_download_name(downloader: httpx.Client, image: dict[str, Any]) -> None:
    first = download(downloader, image["url"])
    etag = first.headers["etag"]
    again = downloader.get(first.url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert downloader.get(first.url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert "content-disposition" not in first.headers

    attachment = download(downloader, with_query(image["url"], download="true", filename="x.jpg"))
    assert attachment.headers["content-disposition"] == 'attachment; filename="x.jpg"'
    assert attachment.content == first.content


# -- a receiver on 127.0.0.1 (for callbacks, and to prove URL inputs are never fetched) ------------------


@pytest.fixture
def receivers() -> Iterator[Callable[..., WebhookReceiver]]:
    started: list[WebhookReceiver] = []

    def start(statuses: Sequence[int] = (), then: int = 200) -> WebhookReceiver:
        started.append(WebhookReceiver(statuses, then))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


# -- edit mode --------------------------------------------------------------------------------------


def test_edit_mode_accepts_inline_images(civitai: httpx.Client, control: ControlClient) -> None:
    png_data_url = "data:image/png;base64," + encoded_image("PNG")
    raw_jpeg = encoded_image("JPEG", (32, 32))
    workflow = completed(civitai, control, nb2_body(images=[png_data_url, raw_jpeg], prompt="make it snow"))
    assert workflow["status"] == "succeeded"
    assert workflow["steps"][0]["input"]["images"] == [png_data_url, raw_jpeg]
    pro = submitted(civitai, workflow_body("nano-banana-pro", images=[raw_jpeg]), whatif=True)
    assert pro["cost"]["total"] == 180


def test_edit_mode_does_not_fetch_url_inputs(
    civitai: httpx.Client, control: ControlClient, receivers: Callable[..., WebhookReceiver]
) -> None:
    source = receivers()
    images = [source.url_for("/source.png"), "https://image.civitai.com/.../source.jpeg"]
    workflow = completed(civitai, control, nb2_body(images=images))
    assert workflow["status"] == "succeeded"
    assert source.requests == []


@pytest.mark.parametrize(
    "reference",
    [
        "!!! not base64 !!!",
        base64.b64encode(b"just some text, not an image").decode(),
        "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n truncated").decode(),
        "data:text/plain;base64," + base64.b64encode(b"hello").decode(),
        "ftp://example.com/source.png",
        "file:///etc/passwd",
        "",
    ],
    ids=["bad-base64", "not-an-image", "truncated-png", "text-data-url", "ftp", "file", "empty"],
)
def test_edit_mode_rejects_unusable_images(civitai: httpx.Client, control: ControlClient, reference: str) -> None:
    problem = assert_validation_problem(submit(civitai, nb2_body(images=[reference])), "steps[0].input.images[0]")
    assert list(problem["errors"]) == ["steps[0].input.images[0]"]
    assert control.tasks("civitai") == []
    good = encoded_image("PNG")
    assert_validation_problem(submit(civitai, nb2_body(images=[good, reference])), "steps[0].input.images[1]")


# -- callbacks --------------------------------------------------------------------------------------


def with_callbacks(*callbacks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**nb2_body(**fields), "callbacks": list(callbacks)}


def webhook_log(control: ControlClient, workflow_id: str) -> list[tuple[str, int, str, int | None, float]]:
    """(event, attempt, outcome, status, clock time) of each journaled delivery attempt."""
    return [
        (e["detail"]["event"], e["detail"]["attempt"], e["detail"]["outcome"], e["status"], e["at"])
        for e in control.journal(kind="webhook", task_id=workflow_id)
    ]


def test_workflow_callbacks_are_retried_then_delivered_in_order(
    civitai: httpx.Client, control: ControlClient, receivers: Callable[..., WebhookReceiver]
) -> None:
    receiver = receivers(statuses=[500, 500])
    t0 = control.now()
    workflow = submitted(civitai, with_callbacks(
        {"url": receiver.url_for("/detailed"), "type": ["workflow:*"], "detailed": True},
    ))
    control.flush_webhooks()  # the first attempt runs as the submission returns, before the clock moves
    control.advance(60)
    done = get_workflow(civitai, workflow["id"]).json()
    started, finished = seconds(done["startedAt"]), seconds(done["completedAt"])

    events = receiver.bodies("/detailed")
    assert [(request.json()["status"], request.status) for request in receiver.requests] == [
        ("unassigned", 500), ("unassigned", 500), ("unassigned", 200), ("processing", 200), ("succeeded", 200),
    ]
    for event in events:
        assert_valid("response/workflow-event", event)
        assert event["$type"] == "workflow" and event["workflowId"] == workflow["id"]
        assert event["details"]["createdAt"] == done["createdAt"]
    assert [seconds(event["timestamp"]) for event in events[2:]] == pytest.approx([t0, started, finished], abs=1e-3)
    final = events[-1]["details"]["steps"][0]["output"]["images"][0]
    assert final["available"] is True and final["id"] == first_image(done)["id"]

    log = webhook_log(control, workflow["id"])
    assert [entry[:4] for entry in log] == [
        ("workflow:unassigned", 1, "retrying", 500),
        ("workflow:unassigned", 2, "retrying", 500),
        ("workflow:unassigned", 3, "delivered", 200),
        ("workflow:processing", 1, "delivered", 200),
        ("workflow:succeeded", 1, "delivered", 200),
    ]
    # Retries wait 1 s then 2 s; a later event waits for the one before it to be settled.
    expected_times = [t0, t0 + 1, t0 + 3, max(started, t0 + 3), finished]
    assert [entry[4] for entry in log] == pytest.approx(expected_times, abs=1e-3)


def test_step_and_job_callbacks(
    civitai: httpx.Client, control: ControlClient, receivers: Callable[..., WebhookReceiver]
) -> None:
    receiver = receivers()
    workflow = submitted(civitai, with_callbacks(
        {"url": receiver.url_for("/steps"), "type": ["step:*"], "detailed": True},
        {"url": receiver.url_for("/jobs"), "type": ["job:*"]},
        {"url": receiver.url_for("/succeeded"), "type": ["workflow:succeeded", "step:failed"]},
    ))
    control.flush_webhooks()
    control.advance(60)
    done = get_workflow(civitai, workflow["id"]).json()
    job_id = done["steps"][0]["jobs"][0]["id"]

    steps, jobs = receiver.bodies("/steps"), receiver.bodies("/jobs")
    assert [event["status"] for event in steps] == ["unassigned", "processing", "succeeded"]
    for event in steps:
        assert_valid("response/step-event", event)
        assert (event["$type"], event["workflowId"], event["name"]) == ("step", workflow["id"], "$0")
        assert "details" in event
    assert steps[-1]["details"]["output"]["images"][0]["available"] is True
    assert [event["status"] for event in jobs] == ["unassigned", "processing", "succeeded"]
    for event in jobs:
        assert_valid("response/job-event", event)
        assert (event["$type"], event["jobId"], event["stepName"]) == ("job", job_id, "$0")
    assert jobs[-1]["progress"] == 1 and jobs[-1]["reason"] is None
    (succeeded,) = receiver.bodies("/succeeded")
    assert_valid("response/workflow-event", succeeded)
    assert succeeded["status"] == "succeeded" and "details" not in succeeded


def test_blocked_and_canceled_workflows_call_back(
    civitai: httpx.Client, control: ControlClient, receivers: Callable[..., WebhookReceiver]
) -> None:
    receiver = receivers()
    hooks = (
        {"url": receiver.url_for("/wf"), "type": ["workflow:*"]},
        {"url": receiver.url_for("/job"), "type": ["job:*"]},
    )
    blocked = submitted(civitai, with_callbacks(*hooks, prompt=f"{BLOCK}"))
    canceled = submitted(civitai, with_callbacks(*hooks))
    assert civitai.put(f"/v2/consumer/workflows/{canceled['id']}", json={"status": "canceled"}).status_code == 204
    control.flush_webhooks()
    control.advance(60)

    def statuses(path: str, workflow_id: str) -> list[str]:
        return [event["status"] for event in receiver.bodies(path) if event["workflowId"] == workflow_id]

    assert statuses("/wf", blocked["id"]) == ["unassigned", "processing", "failed"]
    assert statuses("/wf", canceled["id"]) == ["unassigned", "canceled"]
    (job,) = [event for event in receiver.bodies("/job") if event["status"] == "failed"]
    assert_valid("response/job-event", job)
    assert job["reason"] == "blocked" and job["blockedReason"]


@pytest.mark.parametrize(
    ("delays", "offsets"),
    [(None, [0, 1, 3, 7, 15, 31]), ([2, 5], [0, 2, 7])],
    ids=["default-delays", "option-delays"],
)
def test_a_receiver_that_always_fails_is_abandoned_and_later_events_follow(
    civitai: httpx.Client, control: ControlClient, receivers: Callable[..., WebhookReceiver],
    delays: list[int] | None, offsets: list[float],
) -> None:
    if delays is not None:
        control.set_options("civitai", callback_retry_delays=delays)
    receiver = receivers(then=503)
    t0 = control.now()
    workflow = submitted(civitai, with_callbacks({"url": receiver.url_for("/down"), "type": ["workflow:*"]}))
    control.flush_webhooks()
    control.advance(300)
    attempts = len(offsets)
    order = ["unassigned", "processing", "succeeded"]
    assert [event["status"] for event in receiver.bodies("/down")] == [s for s in order for _ in range(attempts)]

    log = webhook_log(control, workflow["id"])
    outcomes = ["retrying"] * (attempts - 1) + ["abandoned"]
    assert [(event, attempt, outcome, status) for event, attempt, outcome, status, _ in log] == [
        (f"workflow:{s}", n, outcome, 503) for s in order for n, outcome in enumerate(outcomes, 1)
    ]
    assert all("details" not in event for event in receiver.bodies("/down"))
    # Each event is first tried when it happens or when the one before it is abandoned, whichever is later.
    done = get_workflow(civitai, workflow["id"]).json()
    free, expected = t0, []
    for moment in (t0, seconds(done["startedAt"]), seconds(done["completedAt"])):
        first = max(moment, free)
        expected += [first + offset for offset in offsets]
        free = expected[-1]
    assert [entry[4] for entry in log] == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    "url", ["http://example.com/hook", "ftp://127.0.0.1/hook", "https:///no-host", "/relative/hook"]
)
def test_callback_urls_must_be_https_unless_loopback(civitai: httpx.Client, url: str) -> None:
    response = submit(civitai, with_callbacks({"url": url, "type": ["workflow:*"]}))
    assert_validation_problem(response, "callbacks[0].url")


def test_plain_http_loopback_callbacks_can_be_refused(
    civitai: httpx.Client, control: ControlClient, receivers: Callable[..., WebhookReceiver]
) -> None:
    hook = {"url": receivers().url_for("/hook"), "type": ["workflow:*"]}
    assert submit(civitai, with_callbacks(hook)).status_code == 202
    control.set_options("civitai", allow_http_callbacks_to_loopback=False)
    assert_validation_problem(submit(civitai, with_callbacks(hook)), "callbacks[0].url")
