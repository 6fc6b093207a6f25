"""Serving images: hostile download names, rendering off the event loop, one render per image, the encoders.

Pixels are checked against a reference: the PNG and JPEG writers assemble their files from pieces, so each
is decoded and compared with the same card painted by Pillow in the ordinary way.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import astuple
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from conftest import nb2_body
from PIL import Image, ImageChops, ImageStat
from support_civitai import VERIFY_TLS, first_image, submit

from simulator.control_client import ControlClient
from simulator.http.images import content_disposition
from simulator.images import PlaceholderCache, PlaceholderSpec, jpeg, render_placeholder, spec_etag
from simulator.images import cache as cache_module
from simulator.images import worker as worker_module
from simulator.images.design import PANEL, layout
from simulator.images.render import _palette_canvas
from simulator.logs import PROGRESS

PROMPT = "A nano banana wearing sunglasses on a beach at sunset, photorealistic, 35mm film look"


def spec(**overrides: Any) -> PlaceholderSpec:
    fields: dict[str, Any] = {"width": 640, "height": 480, "format": "png", "seed": 7,
                              "model": "gemini-3.1-flash-image", "prompt": PROMPT, "index": 0, "label": "civitai"}
    return PlaceholderSpec(**(fields | overrides))


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def reference(item: PlaceholderSpec) -> Image.Image:
    """The same card painted on a full-size canvas by Pillow, the straightforward way."""
    card = layout(item.width, item.height, item.seed, item.index, item.model, item.prompt, item.label)
    return _palette_canvas(card).convert("RGB")


# -- the encoders ------------------------------------------------------------------------------------------

# Sizes off the 16-pixel grid, an extreme strip, a size whose repeated rows are written as hand-made deflate
# blocks at the largest row distance a 4-bit row can have.
SIZES = [(257, 131), (1024, 1024), (1376, 768), (3072, 384), (384, 3072), (12288, 1536), (96, 64), (8, 2000)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_png_is_the_card_pixel_for_pixel(width: int, height: int) -> None:
    item = spec(width=width, height=height)
    data = render_placeholder(item)
    # zlib checks the Adler-32 the writer combined arithmetically; Pillow alone would not.
    start = data.index(b"IDAT")
    length = struct.unpack(">I", data[start - 4: start])[0]
    zlib.decompress(data[start + 4: start + 4 + length])
    image = decoded(data)
    assert image.size == (width, height)
    assert ImageChops.difference(image.convert("RGB"), reference(item)).getbbox() is None


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_jpeg_decodes_to_the_card(width: int, height: int) -> None:
    item = spec(width=width, height=height, format="jpeg")
    image = decoded(render_placeholder(item))
    assert (image.size, image.mode) == ((width, height), "RGB")
    error = ImageStat.Stat(ImageChops.difference(image, reference(item))).mean
    assert max(error) < 4, error  # JPEG is lossy; a misplaced MCU would cost tens of levels


def test_jpeg_flat_regions_are_exact_colours() -> None:
    item = spec(width=1024, height=1024, format="jpeg")
    image, expected = decoded(render_placeholder(item)), reference(item)
    corner = (3, 3)
    assert all(abs(a - b) <= 2 for a, b in zip(image.getpixel(corner), expected.getpixel(corner), strict=True))


@pytest.mark.parametrize("quality", [1, 10, 50, 85, 100])
def test_a_flat_mcu_written_by_hand_is_what_libjpeg_writes(quality: int) -> None:
    rng = random.Random(quality)
    colours = [(0, 0, 0), (255, 255, 255), (128, 128, 128), PANEL,
               *(tuple(rng.randrange(256) for _ in range(3)) for _ in range(200))]
    swatches = Image.new("RGB", (16 * len(colours), 16))
    for n, colour in enumerate(colours):
        swatches.paste(colour, (16 * n, 0, 16 * (n + 1), 16))
    header, segments = jpeg.encode(swatches, quality)
    table = jpeg.tables(quality)
    assert jpeg.with_size(table.header, swatches.width, 16) == header
    assert [table.flat(colour) for colour in colours] == segments  # type: ignore[arg-type]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_webp_is_lossless(width: int, height: int) -> None:
    item = spec(format="webp", width=width, height=height)
    assert ImageChops.difference(decoded(render_placeholder(item)).convert("RGB"), reference(item)).getbbox() is None


def test_caption_lines_shared_by_two_images_render_the_same_pixels() -> None:
    # The panel does not depend on the seed, so a prompt line looks alike in every image that shows it.
    first, second = (reference(spec(seed=seed, width=1024, height=1024)) for seed in (1, 2))
    card = layout(1024, 1024, 1, 0, "gemini-3.1-flash-image", PROMPT, "civitai")
    prompt_strip = card.strips()[-1][0]
    assert ImageChops.difference(first.crop(prompt_strip), second.crop(prompt_strip)).getbbox() is None


# -- the cache: single flight, off the event loop ----------------------------------------------------------


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, list[PlaceholderSpec]]]:
    """Renders wait for the event: a render under way for as long as the test wants."""
    release = threading.Event()
    started: list[PlaceholderSpec] = []

    def slow_render(item: PlaceholderSpec) -> bytes:
        started.append(item)
        assert release.wait(30), "the test never released the render"
        return render_placeholder(item)

    monkeypatch.setattr(cache_module, "render_placeholder", slow_render)
    yield release, started
    release.set()


def test_concurrent_fetches_share_one_render_and_the_loop_keeps_running(
    gated: tuple[threading.Event, list[PlaceholderSpec]],
) -> None:
    release, started = gated
    cache = PlaceholderCache()
    item = spec()

    async def scenario() -> list[bytes]:
        fetches = [asyncio.ensure_future(cache.fetch(item)) for _ in range(20)]
        while not started:  # the render is under way in its thread ...
            await asyncio.sleep(0)
        ticks = 0
        for _ in range(100):  # ... and the loop still runs other work meanwhile
            await asyncio.sleep(0)
            ticks += 1
        assert ticks == 100 and not any(fetch.done() for fetch in fetches)
        release.set()
        return await asyncio.gather(*fetches)

    results = asyncio.run(scenario())
    assert len(started) == 1 and cache.renders == 1
    assert len({id(result) for result in results}) == 1
    assert cache.get(item) is results[0] and cache.renders == 1


def test_a_fetch_given_up_does_not_cancel_the_render_others_wait_for(
    gated: tuple[threading.Event, list[PlaceholderSpec]],
) -> None:
    release, started = gated
    cache = PlaceholderCache()
    item = spec()

    async def scenario() -> bytes:
        impatient = asyncio.ensure_future(cache.fetch(item))
        patient = asyncio.ensure_future(cache.fetch(item))
        while not started:
            await asyncio.sleep(0)
        impatient.cancel()  # a client that hung up
        await asyncio.sleep(0)
        release.set()
        return await patient

    assert asyncio.run(scenario()) == render_placeholder(item)
    assert cache.renders == 1 and item in cache


def test_blocking_get_joins_a_render_under_way(gated: tuple[threading.Event, list[PlaceholderSpec]]) -> None:
    release, started = gated
    cache = PlaceholderCache()
    item = spec()
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(item))) for _ in range(4)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(30)
    assert len(started) == 1 and len({id(result) for result in results}) == 1


def test_a_failed_render_is_reported_to_every_waiter_and_retried_next_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def failing(item: PlaceholderSpec) -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("no room for this canvas")
        return render_placeholder(item)

    monkeypatch.setattr(cache_module, "render_placeholder", failing)
    cache = PlaceholderCache()
    with pytest.raises(MemoryError):
        asyncio.run(cache.fetch(spec()))
    assert cache.get(spec()) == render_placeholder(spec())


def test_a_render_cheaper_than_a_hand_off_runs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    where: list[str] = []

    def render(item: PlaceholderSpec) -> bytes:
        where.append(threading.current_thread().name)
        return render_placeholder(item)

    monkeypatch.setattr(cache_module, "render_placeholder", render)
    small, larger = spec(width=1024, height=1024, format="jpeg"), spec(width=1024, height=1024, format="png")
    cache = PlaceholderCache()

    async def scenario() -> None:
        await cache.fetch(small)
        await cache.fetch(larger)

    asyncio.run(scenario())
    assert where[0] == threading.main_thread().name
    assert where[1].startswith("nanobanana-render")


def test_large_renders_run_in_a_worker_process_and_give_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_here(item: PlaceholderSpec) -> bytes:
        raise AssertionError("a large render ran in the server's process")

    large = [spec(width=4096, height=4096, format="png", seed=11), spec(width=12288, height=1536, format="webp")]
    expected = [render_placeholder(item) for item in large]
    monkeypatch.setattr(cache_module, "render_placeholder", not_here)
    cache = PlaceholderCache()

    async def scenario() -> list[bytes]:
        return list(await asyncio.gather(*(cache.fetch(item) for item in large for _ in range(3))))

    assert asyncio.run(scenario()) == [data for data in expected for _ in range(3)]
    assert cache.renders == 2


def test_a_dead_worker_costs_a_render_here_and_is_replaced() -> None:
    cache = PlaceholderCache()
    first, second, third = (spec(width=4096, height=4096, format="webp", seed=seed) for seed in (21, 22, 23))
    asyncio.run(cache.fetch(first))
    for worker in list(cache_module._WORKERS._started):
        worker._process.kill()  # as the out-of-memory killer would
    assert asyncio.run(cache.fetch(second)) == render_placeholder(second)
    assert asyncio.run(cache.fetch(third)) == render_placeholder(third)
    assert all(worker.alive for worker in cache_module._WORKERS._started)


def test_the_worker_reports_a_failed_render_and_keeps_serving() -> None:
    def request(fields: list[Any]) -> bytes:
        body = json.dumps(fields).encode()
        return struct.pack(">I", len(body)) + body

    good = spec(width=64, height=48)
    requests = io.BytesIO(request([0, 0, "png", 1, "m", "p", 0, "", None]) + request(list(astuple(good))))
    answers = io.BytesIO()
    worker_module.serve(requests, answers)
    data = answers.getvalue()
    failed_length = struct.unpack(">I", data[1:5])[0]
    assert data[0] == 1 and b"ValueError" in data[5: 5 + failed_length]
    rest = data[5 + failed_length:]
    assert rest[0] == 0 and rest[5:] == render_placeholder(good)


def test_large_renders_report_their_progress(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=PROGRESS):
        PlaceholderCache().get(spec(width=4096, height=4096, format="jpeg", seed=3))
        PlaceholderCache().get(spec(width=1024, height=1024, format="jpeg"))
    messages = [record.getMessage() for record in caplog.records if record.name == PROGRESS]
    assert len(messages) == 2
    assert messages[0] == "render a 4096x4096 jpeg placeholder (seed 3)..."
    assert re.fullmatch(r"render a 4096x4096 jpeg placeholder \(seed 3\) done in \d+\.\d s \(\d+ bytes\)",
                        messages[1])


def test_etag_follows_the_spec_not_the_render() -> None:
    assert spec_etag(spec()) == spec_etag(spec())
    assert len({spec_etag(spec()), spec_etag(spec(seed=8)), spec_etag(spec(format="jpeg"))}) == 3


# -- over HTTP ---------------------------------------------------------------------------------------------


@pytest.fixture
def image_url(civitai: httpx.Client, control: ControlClient) -> str:
    control.set_autojump(True)
    answer = submit(civitai, nb2_body(), wait=100)
    assert answer.status_code == 200, answer.text
    control.set_autojump(False)
    return str(first_image(answer.json())["url"])


@pytest.fixture
def downloader() -> Iterator[httpx.Client]:
    with httpx.Client(verify=VERIFY_TLS, follow_redirects=True) as client:
        yield client


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("x.jpg", 'attachment; filename="x.jpg"'),
        ("evil\r\nSet-Cookie: a=b.jpg", 'attachment; filename="evilSet-Cookie: a=b.jpg"'),
        ("nul\x00byte.jpg", 'attachment; filename="nulbyte.jpg"'),
        ("🍌 banana.jpg", "attachment; filename=\"_ banana.jpg\"; filename*=UTF-8''%F0%9F%8D%8C%20banana.jpg"),
        ('a".jpg; filename*=evil', "attachment; filename=\"a_.jpg; filename*=evil\"; "
                                   "filename*=UTF-8''a%22.jpg%3B%20filename%2A%3Devil"),
        ("café\\x.jpg", "attachment; filename=\"cafe_x.jpg\"; filename*=UTF-8''caf%C3%A9%5Cx.jpg"),
    ],
)
def test_download_name_is_rfc_6266_whatever_the_query_holds(
    downloader: httpx.Client, image_url: str, name: str, header: str
) -> None:
    answer = downloader.get(with_query(image_url, download="true", filename=name))
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == header
    assert decoded(answer.content).format == "JPEG"


def test_an_empty_or_control_only_name_falls_back_to_the_blob_name(
    downloader: httpx.Client, image_url: str
) -> None:
    for name in ("", "\r\n\t"):
        answer = downloader.get(with_query(image_url, download="true", filename=name))
        disposition = answer.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="') and disposition.endswith('.jpg"')


def test_content_disposition_never_leaves_printable_ascii() -> None:
    for name in ("\u2028line", "\ud800lone", "日本語.png", "\x7f\x9b.jpg", "a" * 300):
        header = content_disposition(name, "blob.jpg")
        assert header.isascii() and header.isprintable(), header


def test_conditional_fetch_needs_no_render(downloader: httpx.Client, image_url: str, control: ControlClient) -> None:
    first = downloader.get(image_url)
    again = downloader.get(first.url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = downloader.head(first.url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    assert head.headers["etag"] == first.headers["etag"]
