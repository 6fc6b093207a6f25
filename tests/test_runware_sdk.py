"""The official Runware Python SDK, unchanged, against the simulator over its REST transport.

Distribution `runware-sdk` (import name `runware`, github Runware/runware-python): `Runware(api_key=…,
transport="rest", http_base_url=…)` POSTs one-element task arrays with `Authorization: Bearer`. Its
WebSocket transport, the older `runware` 0.5.x (WebSocket only) and @runware/sdk-js are driven in
tests/test_runware_sdks_ws.py.

`taskType` is passed explicitly: without it the SDK looks the model up in a registry it downloads.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import httpx
import pytest
from conftest import server_fixture
from PIL import Image
from support_runware import SDK_VERSION, sdk_run

from simulator.control_client import ControlClient
from simulator.live import LiveServer

pytestmark = pytest.mark.skipif(SDK_VERSION is None, reason="the runware-sdk distribution is not installed")

KEY = "rw-sdk-key"
NB2 = {"taskType": "imageInference", "model": "google:4@3", "positivePrompt": "a ripe banana on a desk",
       "width": 1376, "height": 768}

server = server_fixture("runware")


def test_sync_image_inference_returns_downloadable_images(server: LiveServer, control: ControlClient) -> None:
    control.set_autojump(True)
    results = sdk_run(server, NB2 | {"numberResults": 2, "deliveryMethod": "sync", "includeCost": True,
                                     "outputFormat": "PNG"}, KEY)
    assert len(results) == 2 and len({r["imageUUID"] for r in results}) == 2
    assert all(r["cost"] == 0.06895 for r in results)
    picture = Image.open(io.BytesIO(httpx.get(results[0]["imageURL"]).content))
    assert (picture.format, picture.size) == ("PNG", (1376, 768))
    request = control.journal(provider="runware", operation="Tasks")[0]
    assert request["request_headers"]["user-agent"].startswith(f"runware-python/{SDK_VERSION}")
    assert request["request_body"][0]["deliveryMethod"] == "sync"


def test_default_async_run_polls_get_response_until_done(server: LiveServer, control: ControlClient) -> None:
    def advance_once_submitted() -> None:
        deadline = time.monotonic() + 10
        while not control.tasks("runware") and time.monotonic() < deadline:
            time.sleep(0.01)
        control.advance(60)

    helper = threading.Thread(target=advance_once_submitted)
    helper.start()
    results = sdk_run(server, NB2 | {"outputType": "dataURI"}, KEY)
    helper.join()
    assert len(results) == 1 and results[0]["status"] == "success"
    assert results[0]["imageDataURI"].startswith("data:image/jpeg;base64,")
    operations = [e["request_body"][0]["taskType"] for e in control.journal(provider="runware", operation="Tasks")]
    assert operations[0] == "imageInference" and set(operations[1:]) == {"getResponse"}


@pytest.mark.parametrize(("setup", "params", "code", "status"), [
    (None, {"width": 1000}, "validation", 400),
    ("empty_wallet", {}, "quota", 402),
    (None, {"positivePrompt": "a banana [sim:block]"}, "safety", 400),
    ("only_other_key", {}, "auth", 401),
])
def test_errors_reach_the_sdk_in_its_categories(
    server: LiveServer, control: ControlClient, setup: str | None, params: dict[str, Any], code: str, status: int
) -> None:
    from runware.errors import RunwareError

    control.set_autojump(True)
    if setup == "empty_wallet":
        control.set_balance("runware", KEY, 0)
    if setup == "only_other_key":
        control.set_tokens("runware", ["another-key"])
    with pytest.raises(RunwareError) as caught:
        sdk_run(server, NB2 | {"deliveryMethod": "sync"} | params, KEY)
    assert (caught.value.code, caught.value.status_code) == (code, status)
