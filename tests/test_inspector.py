"""The inspector, server side: the page and its assets, every JSON view it reads (which scripts can read too),
credential masking, the session file, and the live journal stream, against a simulator on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import nb2_body, provider_server, receiver_fixture
from PIL import Image
from support_envs import EnvironmentUnavailable, project_wheel
from support_inspector import KEY, WORKFLOWS, run_session

from simulator.banner import Facts, banner
from simulator.clock import VirtualClock
from simulator.control_client import ControlClient
from simulator.inspector import masking
from simulator.inspector.routes import STATIC
from simulator.live import LiveServer
from simulator.sim import Simulator
from simulator.testing.receiver import WebhookReceiver

ASSETS = sorted(p.name for p in STATIC.iterdir() if p.is_file())


@pytest.fixture(scope="session")
def server(live_server: LiveServer) -> LiveServer:
    """The session's Civitai simulator, which the `civitai` client drives too."""
    return live_server


receiver = receiver_fixture()


@pytest.fixture
def sim_get(server: LiveServer, http: httpx.Client) -> Any:
    def get(path: str, **params: Any) -> Any:
        response = http.get(f"{server.url}/_sim{path}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    return get


@pytest.fixture
def session(server: LiveServer, control: ControlClient, receiver: WebhookReceiver) -> Any:
    return run_session(server.url, control, receiver)


# -- the page and its assets -------------------------------------------------------------------------------------


def test_the_page_and_every_asset_are_served_from_the_package_with_a_strict_policy(server: LiveServer,
                                                                                   http: httpx.Client) -> None:
    page = http.get(f"{server.url}/_sim/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    for name in ASSETS:
        response = http.get(f"{server.url}/_sim/ui/{name}")
        assert response.status_code == 200, name
        assert response.headers["x-content-type-options"] == "nosniff"
    assert {"index.html", "app.js", "api.js", "dom.js", "journal.js", "views.js", "style.css"} <= set(ASSETS)
    assert http.get(f"{server.url}/_sim/ui/app.js").headers["content-type"].startswith("text/javascript")


def test_every_file_the_page_loads_is_its_own_nothing_from_a_cdn() -> None:
    page = (STATIC / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert loaded and all(url.startswith(("/_sim/ui/", "data:")) for url in loaded), loaded
    for name in ASSETS:
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://(?!127\.0\.0\.1|\$\{host\})", text.replace("http://${host}", "")), name
        for module in re.findall(r'from "([^"]+)"', text):
            assert module.startswith("./") and (STATIC / module[2:]).is_file(), (name, module)


@pytest.mark.slow
def test_the_wheel_ships_every_asset_of_the_page() -> None:
    try:
        wheel = project_wheel()
    except EnvironmentUnavailable as exc:
        pytest.skip(f"cannot build the wheel here: {exc}")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    assert {f"simulator/inspector/static/{name}" for name in ASSETS} <= shipped


@pytest.mark.parametrize("path", ["/_sim/ui/../http/control.py", "/_sim/ui/%2e%2e/routes.py", "/_sim/ui/nope.js",
                                  "/_sim/ui/records.py", "/_sim/ui/..%2f__init__.py"])
def test_nothing_but_the_shipped_assets_is_served(server: LiveServer, http: httpx.Client, path: str) -> None:
    response = http.get(f"{server.url}{path}")
    assert response.status_code == 404
    assert "import" not in response.text


def test_with_a_control_token_the_page_holds_no_data_and_every_view_needs_the_token(http: httpx.Client) -> None:
    sim = Simulator(clock=VirtualClock(), providers=["civitai"], control_token="s3cret-token")
    with LiveServer(sim) as live:
        assert http.get(f"{live.url}/_sim/ui").status_code == 200
        for path in ["/journal?summary=true", "/journal/1", "/journal/stream", "/timelines", "/gallery",
                     "/gallery/x.png", "/webhooks", "/ledger", "/session"]:
            refused = http.get(f"{live.url}/_sim{path}")
            assert refused.status_code == 401, path
            assert refused.json()["field"] == "Authorization"
        authorized = http.get(f"{live.url}/_sim/timelines", headers={"Authorization": "Bearer s3cret-token"})
        assert authorized.status_code == 200 and authorized.json()["tasks"] == []


# -- the journal as the page reads it ----------------------------------------------------------------------------


def test_journal_rows_say_why_a_request_was_rejected_and_which_rule_fired(session: Any, sim_get: Any) -> None:
    rows = sim_get("/journal", summary="true", rejected="true")["entries"]
    assert [row["status"] for row in rows] == [429, 400]
    assert rows[0]["faults"] == ["first-submit-429"]
    assert rows[1]["why"] == 'steps[0].input.aspectRatio: enum (nearest "21:9")'
    assert all(set(row) >= {"seq", "at", "provider", "operation", "owner", "task_id", "violations"} for row in rows)
    accepted = sim_get("/journal", summary="true", rejected="false")["entries"]
    assert accepted and all(r["status"] < 400 for r in accepted if r["kind"] == "http")


def test_one_entry_by_number_with_its_violation_field_rule_and_nearest_value(session: Any, sim_get: Any,
                                                                             server: LiveServer,
                                                                             http: httpx.Client) -> None:
    entry = sim_get(f"/journal/{session.rejected_seq}", masked="true")
    violation = entry["violations"][0]
    assert (violation["path"], violation["rule"], violation["nearest"]) == ("steps[0].input.aspectRatio", "enum",
                                                                            "21:9")
    assert entry["request_body"]["steps"][0]["input"]["aspectRatio"] == "7:3"
    assert entry["response_headers"]["content-type"] == "application/problem+json"
    missing = http.get(f"{server.url}/_sim/journal/999999")
    assert missing.status_code == 404 and missing.json()["field"] == "seq"
    assert http.get(f"{server.url}/_sim/journal/1?verbose=1").status_code == 400


def test_search_finds_text_inside_bodies(session: Any, sim_get: Any, server: LiveServer, http: httpx.Client) -> None:
    found = sim_get("/journal", summary="true", search="[SIM:BLOCK]")["entries"]
    assert [row["task_id"] for row in found if row["kind"] == "http"] == [session.blocked["id"]]
    assert sim_get("/journal", search="no such text anywhere")["entries"] == []
    too_long = http.get(f"{server.url}/_sim/journal", params={"search": "x" * 1001})
    assert too_long.status_code == 400 and too_long.json()["field"] == "search"
    assert http.get(f"{server.url}/_sim/journal", params={"rejected": "maybe"}).json()["field"] == "rejected"


def test_credentials_are_masked_in_every_view_and_the_session_file(session: Any, sim_get: Any, server: LiveServer,
                                                                   http: httpx.Client) -> None:
    secret = KEY[4:-2]
    for path in ["/journal?masked=true", "/journal?summary=true", "/timelines", "/gallery", "/webhooks", "/ledger",
                 "/session"]:
        text = http.get(f"{server.url}/_sim{path}").text
        assert secret not in text, path
    entry = sim_get(f"/journal/{session.rejected_seq}", masked="true")
    assert entry["request_headers"]["authorization"] == "Bearer sk-i…42"
    assert entry["owner"] == "sk-i…42"
    assert KEY in http.get(f"{server.url}/_sim/journal").text  # unmasked unless asked: scripts read what was sent


def test_masking_finds_credentials_under_every_name_providers_use() -> None:
    assert masking.mask_mapping({"X-Goog-Api-Key": "AIzaSyA-1234567890", "x-api-key": "abcdefghijkl",
                                 "Content-Type": "application/json", "Cookie": "session=abcdef123456"}) == {
        "X-Goog-Api-Key": "AIza…90", "x-api-key": "abcd…kl", "Content-Type": "application/json",
        "Cookie": "sess…56"}
    assert masking.mask_mapping({"key": ["AIzaSyA-1234567890"], "wait": ["60"]}) == {"key": ["AIza…90"],
                                                                                     "wait": ["60"]}
    body = [{"taskType": "authentication", "apiKey": "rw-secret-key-123"}, {"prompt": "a cat", "max_tokens": 5}]
    assert masking.mask_body(body) == [{"taskType": "authentication", "apiKey": "rw-s…23"},
                                       {"prompt": "a cat", "max_tokens": 5}]
    assert masking.mask_credential("Bearer short") == "Bearer •••••"
    assert masking.mask_owner(None) is None
    assert masking.mask_url("http://127.0.0.1:9/hook?token=abcdefghijkl&n=1") == "http://127.0.0.1:9/hook?token=abcd…kl&n=1"
    assert masking.mask_url("http://127.0.0.1:9/hook?n=1") == "http://127.0.0.1:9/hook?n=1"


def test_a_webhook_target_with_a_secret_in_its_query_is_shown_masked(server: LiveServer, control: ControlClient,
                                                                     civitai: httpx.Client,
                                                                     receiver: WebhookReceiver, sim_get: Any) -> None:
    body = nb2_body()
    body["callbacks"] = [{"url": f"{receiver.url}?secret=hook-secret-value", "type": ["workflow:*"]}]
    civitai.post(WORKFLOWS, json=body)
    control.flush_webhooks()
    delivery = sim_get("/webhooks")["deliveries"][0]
    assert delivery["url"].endswith("?secret=hook…ue")
    assert "hook-secret-value" not in json.dumps(sim_get("/journal", summary="true"))


# -- timelines, gallery, webhooks, wallets -------------------------------------------------------------------------


def test_a_timeline_shows_the_phases_the_polls_judged_and_the_webhook_attempts(session: Any, sim_get: Any) -> None:
    tasks = {t["id"]: t for t in sim_get("/timelines")["tasks"]}
    task = tasks[session.workflow["id"]]
    assert task["phase"] == "succeeded"
    assert task["accepted_at"] < task["queued_at"] < task["started_at"] < task["terminal_at"]
    assert [p["flags"] for p in task["polls"]] == [["too_fast"], []]
    assert task["polls"][0]["gap"] == 0 and task["min_poll"] == 2
    assert [(w["attempt"], w["status"]) for w in task["webhooks"][:2]] == [(1, 500), (2, 200)]
    assert tasks[session.blocked["id"]]["phase"] == "failed"
    assert tasks[session.blocked["id"]]["failure"]["kind"] == "blocked"


def test_polls_after_the_terminal_answer_and_before_retry_after_are_flagged(server: LiveServer,
                                                                            control: ControlClient,
                                                                            civitai: httpx.Client,
                                                                            sim_get: Any) -> None:
    workflow = civitai.post(WORKFLOWS, json=nb2_body()).json()
    control.add_faults({"match": {"operation": "GetWorkflow"}, "when": {"times": 1},
                        "do": {"error": "rate_limited", "retry_after": 5}})
    assert civitai.get(f"{WORKFLOWS}/{workflow['id']}").status_code == 429
    control.advance(1)
    civitai.get(f"{WORKFLOWS}/{workflow['id']}")  # 1 s after a Retry-After of 5 s
    control.advance(120)
    civitai.get(f"{WORKFLOWS}/{workflow['id']}")  # shows the terminal state
    civitai.get(f"{WORKFLOWS}/{workflow['id']}")  # needless
    task = sim_get("/timelines")["tasks"][0]
    assert [p["flags"] for p in task["polls"]] == [["too_fast"], ["before_retry_after"], [], ["after_terminal"]]


def test_the_gallery_lists_each_image_with_what_was_asked_made_and_when_its_link_expires(
        session: Any, sim_get: Any, server: LiveServer, http: httpx.Client) -> None:
    gallery = sim_get("/gallery")
    made, blocked = gallery["images"]
    assert (made["width"], made["height"], made["format"], made["seed"]) == (1376, 768, "jpeg", 42)
    assert made["requested"] == {"aspectRatio": "16:9", "resolution": "1K"}
    assert made["ready"] and made["task_id"] == session.workflow["id"] and made["prompt"] == "a ripe banana on a desk"
    assert made["expires_at"] > gallery["clock"]["now"]  # the link handed out with the last poll
    assert blocked["blocked"] and not blocked["ready"] and "content filter" in blocked["blocked_reason"]
    picture = http.get(f"{server.url}/_sim/gallery/{made['blob_id']}")
    assert picture.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(picture.content)).size == (1376, 768)
    assert http.get(f"{server.url}/_sim/gallery/nope.jpg").status_code == 404


def test_webhook_deliveries_list_every_attempt_with_its_backoff(session: Any, sim_get: Any) -> None:
    deliveries = sim_get("/webhooks")["deliveries"]
    first = deliveries[0]
    assert first["event"] == "workflow:unassigned" and first["outcome"] == "delivered"
    assert [(a["attempt"], a["status"], a["backoff"]) for a in first["attempts"]] == [(1, 500, None), (2, 200, 1.0)]
    assert not any(d["duplicate"] or d["reordered"] for d in deliveries)


@pytest.fixture
def deliveries_under(control: ControlClient, civitai: httpx.Client, receiver: WebhookReceiver, sim_get: Any) -> Any:
    """The deliveries of one workflow's callbacks, run to the end, with a webhook rule `name` doing `action` once."""

    def run(name: str, action: str) -> list[dict[str, Any]]:
        control.add_faults({"name": name, "match": {"operation": "webhook"}, "when": {"times": 1},
                            "do": {"webhook": action}})
        body = nb2_body()
        body["callbacks"] = [{"url": receiver.url, "type": ["workflow:*"]}]
        civitai.post(WORKFLOWS, json=body)
        control.advance(120)
        control.flush_webhooks()
        return list(sim_get("/webhooks")["deliveries"])

    return run


def test_a_duplicated_webhook_is_flagged_with_the_rule_that_did_it(deliveries_under: Any) -> None:
    deliveries = deliveries_under("twice", "duplicate")
    duplicates = [d for d in deliveries if d["duplicate"]]
    assert len(duplicates) == 1 and duplicates[0]["event"] == deliveries[0]["event"]
    assert deliveries[0]["faults"][0]["rule"] == "twice"


def test_a_reordered_webhook_is_flagged(deliveries_under: Any) -> None:
    deliveries = deliveries_under("late", "reorder")
    held = [d for d in deliveries if d["reordered"]]
    assert len(held) == 1 and held[0]["faults"][0]["rule"] == "late"
    assert deliveries.index(held[0]) > 0  # it went out after a later event of its workflow
    assert next(d["event"] for d in deliveries if not d["reordered"]) != held[0]["event"]


def test_the_ledger_links_each_debit_and_refund_to_its_task(server: LiveServer, control: ControlClient,
                                                            civitai: httpx.Client, sim_get: Any) -> None:
    kept = civitai.post(WORKFLOWS, json=nb2_body()).json()
    canceled = civitai.post(WORKFLOWS, json=nb2_body()).json()
    assert civitai.put(f"{WORKFLOWS}/{canceled['id']}", json={"status": "canceled"}).status_code < 300
    control.set_balance("civitai", "another-key", 5)
    ledger = sim_get("/ledger")
    moves = [(m["kind"], m["task_id"]) for m in ledger["ledger"]]
    assert moves == [("debit", kept["id"]), ("debit", canceled["id"]), ("credit", canceled["id"]), ("set", None)]
    debit = ledger["ledger"][0]
    assert debit["balance"] == 1_000_000 - debit["amount"] and debit["owner"] == "test…en"
    assert {w["owner"] for w in ledger["wallets"]} == {"test…en", "anot…ey"}


def test_rate_limit_windows_show_what_each_key_used_and_when_a_request_frees(server: LiveServer,
                                                                             control: ControlClient,
                                                                             civitai: httpx.Client,
                                                                             sim_get: Any) -> None:
    control.set_limits({"name": "two-per-ten", "requests": 2, "per": 10})
    start = control.now()
    for _ in range(3):
        civitai.get(f"{WORKFLOWS}/nope")
    window = sim_get("/limits/windows")["windows"]
    assert window == [{"limit": "two-per-ten", "api_key": "test…en", "used": 2, "requests": 2, "per": 10.0,
                       "frees_at": start + 10}]
    control.advance(10)
    assert sim_get("/limits/windows")["windows"] == []


# -- the session file -----------------------------------------------------------------------------------------------


def test_the_session_file_holds_a_har_log_and_the_simulators_own_records(session: Any, server: LiveServer,
                                                                         http: httpx.Client) -> None:
    response = http.get(f"{server.url}/_sim/session")
    assert "attachment" in response.headers["content-disposition"]
    data = response.json()
    assert data["format"] == "nanobanana-sim-session" and data["version"] == 1
    har = data["har"]["log"]
    http_entries = [e for e in data["journal"] if e["kind"] == "http"]
    assert har["version"] == "1.2" and len(har["entries"]) == len(http_entries)
    rejected = next(e for e in har["entries"] if e["response"]["status"] == 400)
    assert rejected["request"]["url"].startswith(f"{server.url}/civitai/v2/consumer/workflows")
    assert {"name": "authorization", "value": "Bearer sk-i…42"} in rejected["request"]["headers"]
    assert json.loads(rejected["request"]["postData"]["text"])["steps"][0]["input"]["aspectRatio"] == "7:3"
    assert rejected["response"]["content"]["mimeType"] == "application/problem+json"
    assert [r["seq"] for r in data["journal_rows"]] == [e["seq"] for e in data["journal"]]
    for key in ("timelines", "gallery", "webhooks", "credits", "faults"):
        assert data[key], key
    assert data["faults"]["rules"][0]["fired"] == 1


# -- the live stream --------------------------------------------------------------------------------------------------


class Events:
    """The server-sent events of one streamed response, read as (name, data) pairs."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.seen: list[tuple[str, Any]] = []

    def first_line(self) -> str:
        return next(self.lines)

    def until(self, done: Any, limit: float = 10) -> list[tuple[str, Any]]:
        """Read on until `done(events read so far)` holds; more than `limit` seconds is a failure."""
        name = "message"
        deadline = time.monotonic() + limit
        for line in self.lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                self.seen.append((name, json.loads(line[6:])))
                if done(self.seen):
                    return self.seen
            assert time.monotonic() < deadline, self.seen
        return self.seen


def entries_of(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [row for name, data in events if name == "entries" for row in data["entries"]]


def test_the_stream_sends_the_state_then_each_new_entry_as_it_is_recorded(server: LiveServer,
                                                                          control: ControlClient,
                                                                          civitai: httpx.Client) -> None:
    with httpx.stream("GET", f"{server.url}/_sim/journal/stream", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Events(response)
        assert stream.first_line() == "retry: 1000"
        civitai.post(WORKFLOWS, json=nb2_body(aspectRatio="7:3"))
        events = stream.until(entries_of)
    assert events[0][0] == "state" and events[0][1]["clock"]["mode"] == "virtual"
    row = entries_of(events)[0]
    assert (row["status"], row["operation"], row["owner"]) == (400, "SubmitWorkflow", "test…en")
    assert row["why"].startswith("steps[0].input.aspectRatio: enum")


def test_a_reconnect_replays_what_came_after_its_last_entry_and_a_burst_loses_nothing(
        server: LiveServer, control: ControlClient, civitai: httpx.Client) -> None:
    civitai.get(f"{WORKFLOWS}/nope")
    first = control.journal()[-1]["seq"]
    with httpx.stream("GET", f"{server.url}/_sim/journal/stream", params={"after": first - 1},
                      timeout=10) as response:
        stream = Events(response)
        assert entries_of(stream.until(entries_of))[0]["seq"] == first

        def burst() -> None:
            with httpx.Client(base_url=civitai.base_url, headers=civitai.headers) as client:
                for _ in range(100):
                    client.get(f"{WORKFLOWS}/nope")

        sender = threading.Thread(target=burst)
        sender.start()
        events = stream.until(lambda ev: len(entries_of(ev)) >= 101, limit=60)
        sender.join()
    assert [row["seq"] for row in entries_of(events)] == list(range(first, first + 101))


async def record(sim: Simulator, count: int) -> None:
    for n in range(count):
        sim.engine.journal.record("event", sim.engine.now(), note=f"event {n}")


def test_entries_recorded_together_arrive_as_one_event_capped_with_the_rest_counted(server: LiveServer,
                                                                                   control: ControlClient) -> None:
    with httpx.stream("GET", f"{server.url}/_sim/journal/stream", timeout=10) as response:
        stream = Events(response)
        stream.until(lambda ev: ev[0][0] == "state")
        server.call(record(server.sim, 1200))
        events = stream.until(entries_of)
    batch = next(data for name, data in events if name == "entries")
    assert len(batch["entries"]) == 500 and batch["skipped"] == 700
    assert batch["entries"][-1]["note"] == "event 1199"  # the newest are kept; the page refetches the rest


def test_a_server_with_an_open_stream_still_stops() -> None:
    live = provider_server("civitai").start()
    with httpx.stream("GET", f"{live.url}/_sim/journal/stream", timeout=30) as response:
        Events(response).first_line()
        live.stop()
        assert live._thread is not None and not live._thread.is_alive()  # ended the stream rather than wait on it


@pytest.mark.parametrize(("token", "made", "line"), [
    (None, False, "http://127.0.0.1:8000/_sim/ui"),
    ("made-at-start", True, "http://127.0.0.1:8000/_sim/ui#token=made-at-start"),
    ("yours", False, "http://127.0.0.1:8000/_sim/ui  (asks for the control token)"),
])
def test_the_banner_links_the_inspector_with_a_made_token_only_in_the_fragment(token: str | None, made: bool,
                                                                                 line: str) -> None:
    facts = Facts(base="http://127.0.0.1:8000", bound="127.0.0.1:8000", exposed=False, providers=["civitai"],
                  root_provider=None, clock=VirtualClock(), seed=0, scenarios=[], self_check="record",
                  control_token=token, token_was_made=made, config=None)
    assert f"  inspector  {line}" in banner(facts).splitlines()
    assert "yours" not in banner(facts)  # a token you chose is never printed


def test_the_readme_documents_every_route_the_inspector_adds() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for route in ["/_sim/ui", "/_sim/journal/stream", "/_sim/timelines", "/_sim/gallery", "/_sim/webhooks",
                  "/_sim/ledger", "/_sim/session", "/_sim/journal/{seq}", "/_sim/limits/windows"]:
        assert route in readme, route
