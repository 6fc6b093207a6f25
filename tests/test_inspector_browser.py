"""The inspector in a real browser: Playwright drives Debian's Chromium (never a downloaded one) against a
simulator on 127.0.0.1, after a client ran a generation that met a 429, broke the schema once and had a prompt
blocked. Each test asserts what a person sees. Without Chromium or Playwright the tests skip, saying why."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import nb2_body, provider_server, receiver_fixture
from support_envs import EnvironmentUnavailable, project_wheel, python_env
from support_inspector import KEY, WORKFLOWS, Session, run_session

from simulator.clock import VirtualClock
from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.sim import Simulator
from simulator.testing.receiver import WebhookReceiver


def chromium() -> str | None:
    """Debian's Chromium (or one named by NANOBANANA_CHROMIUM): the tests never download a browser."""
    named = os.environ.get("NANOBANANA_CHROMIUM")
    if named:
        return named
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


CHROMIUM = chromium()
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
expect = sync_api.expect
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium); "
                                                         "the inspector's browser tests are skipped")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with provider_server("civitai") as live:
        yield live


receiver = receiver_fixture()


@pytest.fixture
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    # A refusal the page shows (a 400 for a bad rule) is logged by the browser too; those are not errors here.
    opened.on("console", lambda message: errors.append(message.text)
              if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    opened.on("response", lambda response: errors.append(f"{response.status} {response.url}")
              if "/_sim/ui" in response.url and response.status >= 400 else None)
    yield opened
    context.close()
    assert not errors, errors  # no script error, no missing asset, no CSP violation


def open_view(page: Any, server: LiveServer, view: str = "journal") -> None:
    page.goto(f"{server.url}/_sim/ui#{view}")
    expect(page.locator("#live")).to_have_text("live")


@pytest.fixture
def done(server: LiveServer, control: ControlClient, receiver: WebhookReceiver) -> Session:
    """The session, with the clock moved on so that every task is terminal."""
    return run_session(server.url, control, receiver)


def test_the_journal_shows_each_rejected_request_beside_its_reason(page: Any, server: LiveServer,
                                                                   done: Session) -> None:
    open_view(page, server)
    rejected = page.locator(f'#journal-rows tr[data-seq="{done.rejected_seq}"]')
    expect(rejected).to_contain_text('steps[0].input.aspectRatio: enum (nearest "21:9")')
    expect(page.locator('#journal-rows tr[data-seq="1"]')).to_contain_text("fault: first-submit-429")
    rejected.click()
    violations = page.locator("#violations")
    expect(violations).to_contain_text("steps[0].input.aspectRatio")
    expect(violations.locator("td.nearest")).to_have_text("21:9")
    expect(page.locator("#entry-detail")).to_contain_text("Bearer sk-i…42")
    page.locator("#copy-curl").click()
    curl = page.locator("#snippet").inner_text()
    assert curl.startswith("curl -X POST") and '-H "authorization: Bearer $API_KEY"' in curl and "7:3" in curl
    page.locator("#copy-pytest").click()
    assert "assert response.status_code == 400" in page.locator("#snippet").inner_text()
    assert KEY not in page.content()
    page.locator('#journal-rows tr[data-seq="1"]').click()
    expect(page.locator("#faults-fired")).to_contain_text("first-submit-429")


def test_filters_and_search_narrow_the_journal(page: Any, server: LiveServer, done: Session) -> None:
    open_view(page, server)
    page.locator('input[name="rejected"]').check()
    expect(page.locator("#journal-rows tr[data-seq]")).to_have_count(2)
    page.locator('input[name="rejected"]').uncheck()
    page.locator('input[name="search"]').fill("[sim:block]")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#journal-rows tr[data-seq]")).to_have_count(1)
    expect(page.locator("#journal-rows")).to_contain_text(done.blocked["id"])


def test_new_requests_appear_live_and_pause_holds_them_back(page: Any, server: LiveServer,
                                                            control: ControlClient) -> None:
    open_view(page, server)
    with httpx.Client(base_url=server.provider_url("civitai"), headers={"Authorization": "Bearer k"}) as api:
        api.get(f"{WORKFLOWS}/first")
        expect(page.locator("#journal-rows")).to_contain_text("/workflows/first")
        page.locator("#pause").click()
        api.get(f"{WORKFLOWS}/second")
        expect(page.locator("#pause")).to_have_text("Resume (1 new)")
        expect(page.locator("#journal-rows")).not_to_contain_text("/workflows/second")
        page.locator("#pause").click()
        expect(page.locator("#journal-rows")).to_contain_text("/workflows/second")


async def record(sim: Simulator, count: int) -> None:
    for n in range(count):
        sim.engine.journal.record("event", sim.engine.now(), note=f"event {n}")


def test_a_flood_of_entries_draws_only_the_newest_rows_and_the_page_stays_usable(page: Any, server: LiveServer,
                                                                                 control: ControlClient) -> None:
    open_view(page, server)
    server.call(record(server.sim, 3000))  # one burst: the stream sends 500 and counts the rest as skipped
    expect(page.locator("#journal-count")).to_have_text("500 shown of 2000 (the newest 500)")
    expect(page.locator("#journal-rows tr[data-seq]")).to_have_count(500)
    expect(page.locator("#journal-rows tr[data-seq]").first).to_have_attribute("data-seq", "3000")
    page.locator('#journal-rows tr[data-seq="2990"]').click()
    expect(page.locator("#entry-detail")).to_contain_text("event 2989")


def test_a_task_bar_reaches_its_terminal_state_when_the_clock_advances(page: Any, server: LiveServer,
                                                                       control: ControlClient,
                                                                       receiver: WebhookReceiver) -> None:
    session = run_session(server.url, control, receiver, advance=False)
    open_view(page, server, "timelines")
    bar = page.locator(f'.task-row[data-task="{session.workflow["id"]}"]')
    expect(bar).to_have_attribute("data-phase", re.compile("accepted|queued"))
    expect(bar).to_contain_text("1 flagged: too fast")
    page.get_by_role("button", name="+1 min").click()
    expect(bar).to_have_attribute("data-phase", "succeeded")
    expect(bar.locator(".seg.succeeded")).to_have_count(1)
    expect(page.locator(f'.task-row[data-task="{session.blocked["id"]}"]')).to_have_attribute("data-phase", "failed")
    expect(page.locator("#clock")).to_contain_text("00:01:02")


def test_the_gallery_shows_the_image_at_its_size_and_the_blocked_one_as_blocked(page: Any, server: LiveServer,
                                                                                done: Session) -> None:
    open_view(page, server, "gallery")
    image = page.locator("#gallery img")
    expect(image).to_have_count(1)
    expect(image).to_have_attribute("src", re.compile("^blob:"))
    assert image.evaluate("i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])") == [1376, 768]
    card = page.locator("figure.card").first
    expect(card).to_contain_text("1376\u00d7768 jpeg")  # as the page writes it, with a multiplication sign
    expect(card).to_contain_text("link expires in 10 min")
    expect(page.locator("figure.is-blocked")).to_contain_text("BLOCKED")
    page.get_by_role("button", name="+10 min").click()
    expect(card).to_contain_text("link expired")


def test_the_webhooks_view_lists_each_attempt_and_what_the_receiver_said(page: Any, server: LiveServer,
                                                                         done: Session) -> None:
    open_view(page, server, "webhooks")
    first = page.locator("section.delivery").first
    expect(first).to_contain_text("workflow:unassigned")
    rows = first.locator("table.attempts tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("500")
    expect(rows.nth(0)).to_contain_text("retrying")
    expect(rows.nth(1)).to_contain_text("200")
    expect(rows.nth(1)).to_contain_text("1.00 s")  # the backoff


def test_the_wallet_shows_the_debit_linked_to_its_task(page: Any, server: LiveServer, done: Session) -> None:
    open_view(page, server, "wallets")
    expect(page.locator("#wallets")).to_contain_text("sk-i…42")
    debit = page.locator("#ledger tbody tr").last
    expect(debit).to_contain_text("debit")
    expect(debit).to_contain_text("\u2212104")  # a minus sign
    debit.get_by_role("link").click()
    expect(page.locator(f'.task-row[data-task="{done.workflow["id"]}"]')).to_be_visible()
    expect(page.locator("#view")).to_contain_text("Polls")


def test_a_rule_from_the_form_is_checked_by_the_control_plane(page: Any, server: LiveServer,
                                                              control: ControlClient) -> None:
    open_view(page, server, "faults")
    form = page.locator("#rule-form")
    form.locator('input[name="name"]').fill("flaky")
    form.locator('input[name="probability"]').fill("2")
    form.get_by_role("button", name="Add rule").click()
    expect(page.locator("#rule-error")).to_contain_text("rules[0].when.probability")
    expect(form.locator('input[name="probability"]')).to_have_attribute("aria-invalid", "true")
    assert control.faults()["rules"] == []
    form.locator('input[name="probability"]').fill("0.5")
    form.get_by_role("button", name="Add rule").click()
    expect(page.locator("#rules")).to_contain_text("flaky")
    assert control.faults()["rules"][0]["when"] == {"probability": 0.5}


def test_a_shipped_scenario_loads_and_clears_from_the_page(page: Any, server: LiveServer,
                                                           control: ControlClient) -> None:
    open_view(page, server, "scenarios")
    first = page.locator("#shipped button").first
    name = first.get_attribute("data-scenario")
    first.click()
    expect(page.locator("#loaded")).to_contain_text(name)
    page.locator("#clear-scenarios").click()
    expect(page.locator("#view")).to_contain_text("No scenario loaded.")


def test_an_exported_session_loads_back_for_reading(page: Any, server: LiveServer, done: Session,
                                                    control: ControlClient, tmp_path: Path) -> None:
    open_view(page, server)
    with page.expect_download() as download:
        page.locator("#export").click()
    saved = tmp_path / "session.json"
    download.value.save_as(saved)
    session = json.loads(saved.read_text())
    assert session["format"] == "nanobanana-sim-session" and KEY not in saved.read_text()
    control.reset()
    page.locator("#open").set_input_files(str(saved))
    expect(page.locator("#live")).to_have_text("reading session.json")
    expect(page.locator(f'#journal-rows tr[data-seq="{done.rejected_seq}"]')).to_contain_text("nearest")
    page.locator(f'#journal-rows tr[data-seq="{done.rejected_seq}"]').click()
    expect(page.locator("#violations td.nearest")).to_have_text("21:9")
    page.locator('#tabs a[data-view="timelines"]').click()
    expect(page.locator(f'.task-row[data-task="{done.workflow["id"]}"]')).to_have_attribute("data-phase",
                                                                                            "succeeded")
    expect(page.locator("#advance")).to_be_hidden()
    page.locator("#back-live").click()
    expect(page.locator("#live")).to_have_text("live")


def test_with_a_control_token_the_page_asks_for_it(browser: Any) -> None:
    sim = Simulator(clock=VirtualClock(), providers=["civitai"], control_token="s3cret-token")
    with LiveServer(sim) as live:
        httpx.get(f"{live.provider_url('civitai')}{WORKFLOWS}/x", headers={"Authorization": "Bearer k"})
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{live.url}/_sim/ui")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#journal-rows")).to_have_count(0)
        page.locator("#token").fill("wrong")
        page.get_by_role("button", name="Unlock").click()
        expect(page.locator("#login-error")).to_have_text("That token was refused.")
        page.locator("#token").fill("s3cret-token")
        page.get_by_role("button", name="Unlock").click()
        expect(page.locator("#journal-rows")).to_contain_text("/workflows/x")
        expect(page.locator("#live")).to_have_text("live")
        context.close()


# -- from the wheel ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_the_page_works_from_a_simulator_installed_from_the_wheel(browser: Any) -> None:
    try:
        python = python_env([project_wheel()], name="inspector-user")
    except EnvironmentUnavailable as exc:
        pytest.skip(f"cannot install the wheel here: {exc}")
    port = free_port()
    process = subprocess.Popen([str(python.parent / "nanobanana-sim"), "serve", "--port", str(port),
                                "--virtual-clock", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/_sim/")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr
                time.sleep(0.1)
        httpx.post(f"{base}/civitai{WORKFLOWS}", json=nb2_body(aspectRatio="7:3"),
                   headers={"Authorization": "Bearer k"})
        context = browser.new_context()
        page = context.new_page()
        missing: list[str] = []
        page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
        page.goto(f"{base}/_sim/ui")
        expect(page.locator("#journal-rows tr[data-seq]")).to_contain_text("aspectRatio")
        assert page.locator("header").evaluate("h => getComputedStyle(h).position") == "sticky"  # style.css loaded
        assert missing == []
        context.close()
    finally:
        process.terminate()
        process.wait(30)
