"""Images: first and repeated fetch over HTTP against a naive Pillow render-and-encode, and other requests'
latency while large images render.

The naive baseline is what a straightforward placeholder server would do for the same size and format: a
full-size canvas, the same caption drawn with ImageDraw, saved with Pillow's default encoder settings.
Images come from Runware (sync delivery), whose requests name any published width x height and format.
"""

from __future__ import annotations

import io
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from load import drive
from PIL import Image, ImageDraw, ImageFont
from routes import PROMPT, PROVIDERS, Request, finished_task

FORMATS = {"jpeg": "JPG", "png": "PNG", "webp": "WEBP"}
MODEL = "gemini-3.1-flash-image"


@dataclass
class ImageFigures:
    width: int
    height: int
    fmt: str
    first_ms: float
    repeat_ms: float
    naive_ms: float
    size_bytes: int


def naive_ms(width: int, height: int, fmt: str, seed: int) -> float:
    started = time.perf_counter()
    image = Image.new("RGB", (width, height), (230, 190, 100))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, min(width, height) // 24))
    lines = [MODEL, f"{width}x{height}", f"seed {seed}", PROMPT[:40], PROMPT[40:]]
    for n, line in enumerate(lines):
        draw.text((width // 10, height // 3 + n * font.size * 1.3), line, font=font, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, fmt.upper())
    return (time.perf_counter() - started) * 1000


def image_url(client: httpx.Client, base: str, width: int, height: int, fmt: str) -> str:
    task = {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": "google:4@3",
            "positivePrompt": PROMPT, "width": width, "height": height, "outputFormat": FORMATS[fmt]}
    answer = client.post(f"{base}/runware/v1", json=[task], headers=PROVIDERS["runware"].headers)
    if answer.status_code != 200:
        raise RuntimeError(f"runware image task: {answer.status_code} {answer.text[:300]}")
    return str(answer.json()["data"][0]["imageURL"])


def timed_get(client: httpx.Client, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    answer = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"image fetch: {answer.status_code} {answer.text[:300]}")
    return elapsed, len(answer.content)


def measure(base: str, sizes: list[tuple[int, int]], formats: list[str], rounds: int) -> list[ImageFigures]:
    figures = []
    with httpx.Client(timeout=120) as client:
        # One-time costs of either side (fonts loaded, modules imported) are not what a first fetch measures.
        for fmt in formats:
            timed_get(client, image_url(client, base, 512, 512, fmt))
            naive_ms(512, 512, fmt, 0)
        for width, height in sizes:
            for fmt in formats:
                firsts, repeats, naives, size = [], [], [], 0
                for round_ in range(rounds):
                    url = image_url(client, base, width, height, fmt)  # a new task: a new seed, a new image
                    first, size = timed_get(client, url)
                    firsts.append(first)
                    repeats.extend(timed_get(client, url)[0] for _ in range(3))
                    naives.append(naive_ms(width, height, fmt, round_))
                figures.append(ImageFigures(width, height, fmt, statistics.median(firsts),
                                            statistics.median(repeats), statistics.median(naives), size))
    return figures


LARGE = [(4096, 4096, "png"), (4096, 4096, "jpeg"), (12288, 1536, "webp")]


def latency_while_rendering(base: str, seconds: float, rate: float,
                            shapes: list[tuple[int, int, str]]) -> tuple[float, float, float, float, int]:
    """(p50, p99) of a paced poll without, then with `shapes` rendering meanwhile; and renders done."""
    qingbo = PROVIDERS["qingbo"]
    with httpx.Client(timeout=120) as client:
        poll: Request = finished_task(client, f"{base}/qingbo", qingbo)

    def probe() -> tuple[float, float]:
        result = drive(f"{base}/qingbo", poll, qingbo.headers, connections=8, duration=seconds, rate=rate)
        return result.p50_ms, result.p99_ms

    idle = probe()
    stop = threading.Event()
    renders = [0]

    def render_loop() -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                width, height, fmt = shapes[renders[0] % len(shapes)]
                timed_get(client, image_url(client, base, width, height, fmt))
                renders[0] += 1

    threads = [threading.Thread(target=render_loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        busy = probe()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return idle[0], idle[1], busy[0], busy[1], renders[0]


Printer = Callable[[str, float, str], None]


def report(figures: list[ImageFigures], emit: Printer) -> None:
    for item in figures:
        name = f"image.{item.fmt}.{item.width}x{item.height}"
        emit(f"{name}.first", item.first_ms, "ms")
        emit(f"{name}.naive", item.naive_ms, "ms")
        emit(f"{name}.first_of_naive", item.first_ms / item.naive_ms, "ratio")
        emit(f"{name}.repeat", item.repeat_ms, "ms")
        emit(f"{name}.bytes", item.size_bytes, "B")
