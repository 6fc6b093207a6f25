"""The inspector under load: does the live journal keep up, and does the page stay smooth?

    .venv/bin/python benchmarks/inspector_load.py [--requests 3000] [--clients 8]

Serves Civitai on a virtual clock, opens /_sim/ui in Debian's Chromium (Playwright), then sends `--requests`
requests (a poll of an unknown workflow, so the answer is a quick 404) from `--clients` threads as fast as
they go. Prints, one a line as `name value unit`: the request rate reached, the longest gap between two
animation frames while they arrived (a page that stalls shows a long one), and the time from the last answer
to its row on screen.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import provider_server  # noqa: E402

FRAME_WATCH = """() => {
  window.__gaps = [];
  let last = performance.now();
  const tick = (now) => { window.__gaps.push(now - last); last = now; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    executable = shutil.which("chromium") or sys.exit("needs Debian's chromium (apt-get install chromium)")
    with provider_server("civitai") as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"{server.url}/_sim/ui")
        expect(page.locator("#live")).to_have_text("live")
        page.evaluate(FRAME_WATCH)
        each = args.requests // args.clients

        def client() -> None:
            with httpx.Client(base_url=server.provider_url("civitai"), headers={"Authorization": "Bearer k"}) as api:
                for _ in range(each):
                    api.get("/v2/consumer/workflows/nope")

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent = time.perf_counter()
        last = each * args.clients
        expect(page.locator(f'#journal-rows tr[data-seq="{last}"]')).to_be_visible(timeout=30_000)
        shown = time.perf_counter()
        gaps = page.evaluate("() => window.__gaps")
        browser.close()
        print(f"requests {last} count")
        print(f"rate {last / (sent - started):.0f} req/s")
        print(f"longest_frame_gap {max(gaps):.0f} ms")
        print(f"frames {len(gaps)} count")
        print(f"last_row_after_last_answer {(shown - sent) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
