"""Retake the README's inspector screenshots: `.venv/bin/python docs/inspector_screenshots.py`.

Runs the browser tests' session (a 429, a schema violation, a blocked prompt, a webhook refused once) on a fresh
simulator, adds a generation still in flight, and has Playwright photograph each view with Debian's Chromium.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from conftest import nb2_body, provider_server  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402
from support_inspector import KEY, WORKFLOWS, run_session  # noqa: E402

from simulator.control_client import ControlClient  # noqa: E402
from simulator.testing.receiver import WebhookReceiver  # noqa: E402


def main() -> None:
    executable = shutil.which("chromium") or sys.exit("needs Debian's chromium (apt-get install chromium)")
    with provider_server("civitai") as server, WebhookReceiver() as receiver:
        control = ControlClient(server.url)
        session = run_session(server.url, control, receiver)
        with httpx.Client(base_url=f"{server.url}/civitai", headers={"Authorization": f"Bearer {KEY}"}) as api:
            api.post(WORKFLOWS, json=nb2_body(aspectRatio="9:16", prompt="a banana split, studio light"))
            control.advance(5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"{server.url}/_sim/ui")
            page.locator(f'#journal-rows tr[data-seq="{session.rejected_seq}"]').click()
            expect(page.locator("#violations")).to_be_visible()
            page.screenshot(path=ROOT / "docs" / "inspector-journal.png")
            for view in ("timelines", "gallery", "webhooks"):
                page.locator(f'#tabs a[data-view="{view}"]').click()
                page.locator(f"#view .view-{view}").wait_for()
                if view == "gallery":
                    expect(page.locator("#gallery img[src^='blob:']").first).to_be_visible()
                page.screenshot(path=ROOT / "docs" / f"inspector-{view}.png")
            browser.close()


if __name__ == "__main__":
    main()
