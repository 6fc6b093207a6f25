"""Tests for simulator.images: the size table, placeholder rendering and input-image validation."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from simulator.images import (
    FORMATS,
    InvalidImageReference,
    PlaceholderCache,
    PlaceholderSpec,
    UnknownSize,
    aspect_ratios,
    content_type,
    decode_image_reference,
    families,
    file_extension,
    nearest_ratio,
    normalize_format,
    pixel_size,
    render_placeholder,
    tiers,
)

FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"
NB1 = "gemini-2.5-flash-image"
IMAGEN = "imagen-4"

FLASH_RATIOS = [
    "1:1",
    "2:3",
    "3:2",
    "3:4",
    "4:3",
    "4:5",
    "5:4",
    "9:16",
    "16:9",
    "21:9",
    "1:4",
    "4:1",
    "1:8",
    "8:1",
]
STANDARD_RATIOS = FLASH_RATIOS[:10]
# Published as-is even though it does not match its ratio; see the $comment in gemini-sizes.json.
QUIRKS = {(FLASH, "0.5K", "21:9")}

ALL_SIZES = [
    (family, tier, ratio)
    for family in families()
    for tier in tiers(family)
    for ratio in aspect_ratios(family, tier)
]
# Rendering every 2K/4K size would cost seconds; the table checks cover them and a few are rendered below.
SMALL_SIZES = [case for case in ALL_SIZES if math.prod(pixel_size(case[0], case[2], case[1])) <= 1_300_000]
HUGE_SIZES = [(FLASH, "4K", "1:1", "jpeg"), (FLASH, "4K", "8:1", "png"), (FLASH, "4K", "21:9", "webp")]

PROMPT = "A nano banana wearing sunglasses on a beach at sunset, photorealistic, 35mm film look"


def spec(**overrides: object) -> PlaceholderSpec:
    fields: dict[str, object] = {
        "width": 96,
        "height": 64,
        "format": "png",
        "seed": 42,
        "model": FLASH,
        "prompt": PROMPT,
        "index": 0,
        "label": "civitai",
    }
    fields.update(overrides)
    return PlaceholderSpec(**fields)  # type: ignore[arg-type]


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


# --- size table -------------------------------------------------------------------------------------------


def test_families_and_tiers() -> None:
    assert families() == [FLASH, PRO, NB1, IMAGEN]
    assert tiers(FLASH) == ["0.5K", "1K", "2K", "4K"]
    assert tiers(PRO) == ["1K", "2K", "4K"]
    assert tiers(NB1) == ["1K"]
    assert tiers(IMAGEN) == ["1K"]


def test_aspect_ratio_lists() -> None:
    for tier in tiers(FLASH):
        assert aspect_ratios(FLASH, tier) == FLASH_RATIOS
    for tier in tiers(PRO):
        assert aspect_ratios(PRO, tier) == STANDARD_RATIOS
    assert aspect_ratios(NB1, "1K") == STANDARD_RATIOS
    assert aspect_ratios(IMAGEN, "1K") == ["1:1", "3:4", "4:3", "9:16", "16:9"]


@pytest.mark.parametrize(
    ("family", "ratio", "tier", "expected"),
    [
        (FLASH, "1:1", "0.5K", (512, 512)),
        (FLASH, "21:9", "0.5K", (792, 168)),
        (FLASH, "21:9", "1K", (1584, 672)),
        (FLASH, "8:1", "4K", (12288, 1536)),
        (FLASH, "1:8", "4K", (1536, 12288)),
        (FLASH, "2:3", "4K", (3392, 5056)),
        (PRO, "21:9", "1K", (1584, 672)),
        (PRO, "16:9", "4K", (5504, 3072)),
        (NB1, "21:9", "1K", (1536, 672)),
        (NB1, "3:4", "1K", (864, 1184)),
        (IMAGEN, "9:16", "1K", (768, 1408)),
        (IMAGEN, "4:3", "1K", (1280, 896)),
    ],
)
def test_pixel_size_spot_checks(family: str, ratio: str, tier: str, expected: tuple[int, int]) -> None:
    assert pixel_size(family, ratio, tier) == expected


@pytest.mark.parametrize(("family", "tier", "ratio"), ALL_SIZES)
def test_every_size_matches_its_ratio(family: str, tier: str, ratio: str) -> None:
    width, height = pixel_size(family, ratio, tier)
    assert width % 8 == 0
    assert height % 8 == 0
    if (family, tier, ratio) in QUIRKS:
        return
    rw, rh = (int(part) for part in ratio.split(":"))
    # Vendors round to multiples of 16/64; Imagen's 3:4 (896x1280) is the loosest at about 7 %.
    assert abs(math.log(width / height) - math.log(rw / rh)) < 0.08


def test_gemini_3_tiers_double_each_step() -> None:
    for family in (FLASH, PRO):
        for smaller, larger in zip(tiers(family), tiers(family)[1:], strict=False):
            for ratio in aspect_ratios(family, smaller):
                if (family, smaller, ratio) in QUIRKS:
                    continue
                w, h = pixel_size(family, ratio, smaller)
                assert pixel_size(family, ratio, larger) == (2 * w, 2 * h), (family, smaller, ratio)


def test_pro_shares_flash_sizes() -> None:
    for tier in tiers(PRO):
        for ratio in aspect_ratios(PRO, tier):
            assert pixel_size(PRO, ratio, tier) == pixel_size(FLASH, ratio, tier)


@pytest.mark.parametrize(
    ("family", "ratio", "tier", "fragment"),
    [
        ("dall-e-3", "1:1", "1K", "Unknown model family 'dall-e-3'"),
        (
            PRO,
            "1:1",
            "0.5K",
            "Resolution '0.5K' is not available for gemini-3-pro-image; supported: 1K, 2K, 4K",
        ),
        (NB1, "1:1", "2K", "supported: 1K"),
        (
            PRO,
            "8:1",
            "1K",
            "Aspect ratio '8:1' is not available for gemini-3-pro-image at 1K; supported: 1:1",
        ),
        (IMAGEN, "21:9", "1K", "supported: 1:1, 3:4, 4:3, 9:16, 16:9"),
    ],
)
def test_unknown_size(family: str, ratio: str, tier: str, fragment: str) -> None:
    with pytest.raises(UnknownSize) as caught:
        pixel_size(family, ratio, tier)
    assert isinstance(caught.value, KeyError)
    assert fragment in str(caught.value)
    assert not str(caught.value).startswith("'")


def test_unknown_size_from_listing_functions() -> None:
    with pytest.raises(UnknownSize):
        tiers("nope")
    with pytest.raises(UnknownSize):
        aspect_ratios(FLASH, "8K")


@pytest.mark.parametrize(
    ("family", "tier", "width", "height", "expected"),
    [
        (FLASH, "1K", 1024, 1024, "1:1"),
        (FLASH, "1K", 1000, 1010, "1:1"),
        (FLASH, "1K", 1920, 1080, "16:9"),
        (FLASH, "1K", 1080, 1920, "9:16"),
        (FLASH, "1K", 3000, 1000, "21:9"),
        (FLASH, "1K", 5000, 1000, "4:1"),
        (FLASH, "1K", 100, 2000, "1:8"),
        (FLASH, "0.5K", 21, 9, "21:9"),
        (PRO, "2K", 100, 2000, "9:16"),
        (NB1, "1K", 640, 480, "4:3"),
        (NB1, "1K", 3000, 1000, "21:9"),
        (IMAGEN, "1K", 800, 1000, "3:4"),
        (IMAGEN, "1K", 2560, 1080, "16:9"),
    ],
)
def test_nearest_ratio(family: str, tier: str, width: int, height: int, expected: str) -> None:
    assert nearest_ratio(family, tier, width, height) == expected


def test_nearest_ratio_is_symmetric_in_log_space() -> None:
    # sqrt(3/4 * 2/3) sits exactly between 2:3 and 3:4 in log space; just either side must split.
    middle = math.sqrt(3 / 4 * 2 / 3)
    assert nearest_ratio(NB1, "1K", round(10_000 * middle) + 2, 10_000) == "3:4"
    assert nearest_ratio(NB1, "1K", round(10_000 * middle) - 2, 10_000) == "2:3"


def test_nearest_ratio_rejects_empty_images() -> None:
    with pytest.raises(ValueError):
        nearest_ratio(FLASH, "1K", 0, 10)
    with pytest.raises(UnknownSize):
        nearest_ratio(FLASH, "9K", 10, 10)


# --- rendering --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("family", "tier", "ratio"), SMALL_SIZES)
def test_renders_every_small_table_size(family: str, tier: str, ratio: str) -> None:
    width, height = pixel_size(family, ratio, tier)
    fmt = FORMATS[SMALL_SIZES.index((family, tier, ratio)) % len(FORMATS)]
    image = open_image(render_placeholder(spec(width=width, height=height, format=fmt, model=family)))
    assert image.size == (width, height)
    assert image.format == fmt.upper()


def test_small_sizes_cover_every_family() -> None:
    assert {family for family, _, _ in SMALL_SIZES} == set(families())
    assert len(SMALL_SIZES) >= 50


@pytest.mark.parametrize(("family", "tier", "ratio", "fmt"), HUGE_SIZES)
def test_renders_huge_sizes(family: str, tier: str, ratio: str, fmt: str) -> None:
    width, height = pixel_size(family, ratio, tier)
    data = render_placeholder(spec(width=width, height=height, format=fmt, model=family))
    image = Image.open(io.BytesIO(data))  # header only: decoding 19 MP again would double the cost
    assert image.size == (width, height)
    assert image.format == fmt.upper()


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format(fmt: str) -> None:
    data = render_placeholder(spec(format=fmt, width=257, height=131))
    image = open_image(data)
    assert image.format == fmt.upper()
    assert image.size == (257, 131)
    assert image.mode == ("P" if fmt == "png" else "RGB")  # a palette PNG: a designed picture, not a photo
    assert Image.MIME[image.format] == content_type(fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_spec_gives_identical_bytes(fmt: str) -> None:
    assert render_placeholder(spec(format=fmt)) == render_placeholder(spec(format=fmt))


@pytest.mark.parametrize(
    "change",
    [{"seed": 43}, {"index": 1}, {"prompt": "something else"}, {"model": PRO}, {"label": "runware"}],
)
def test_spec_changes_change_the_picture(change: dict[str, object]) -> None:
    assert render_placeholder(spec(**change)) != render_placeholder(spec())


def test_batch_images_differ_in_colour() -> None:
    # The index must change the picture itself, not only the caption: compare a corner's colour.
    first = open_image(render_placeholder(spec(index=0, width=200, height=200))).convert("RGB")
    second = open_image(render_placeholder(spec(index=1, width=200, height=200))).convert("RGB")
    assert first.getpixel((2, 2)) != second.getpixel((2, 2))


def test_rendering_ignores_hash_randomisation() -> None:
    # Seeded output must survive a restart of the simulator, so compare against a fresh interpreter.
    code = (
        "import hashlib, sys\n"
        "from simulator.images import PlaceholderSpec, render_placeholder\n"
        "spec = PlaceholderSpec(96, 64, 'png', 42, 'm', 'a prompt', 3, 'x')\n"
        "sys.stdout.write(hashlib.sha256(render_placeholder(spec)).hexdigest())\n"
    )
    repo_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(repo_root)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    local = render_placeholder(PlaceholderSpec(96, 64, "png", 42, "m", "a prompt", 3, "x"))
    assert result.stdout == hashlib.sha256(local).hexdigest()


def test_jpeg_quality_is_honoured() -> None:
    picture = {"format": "jpeg", "width": 400, "height": 300}
    low = render_placeholder(spec(quality=10, **picture))
    high = render_placeholder(spec(quality=95, **picture))
    assert len(low) < len(high)


def test_odd_inputs_still_render() -> None:
    for case in (
        spec(prompt="", label=""),
        spec(prompt="日本語のプロンプト 🍌 " * 10),
        spec(width=1, height=1),
        spec(width=8, height=2000, seed=-(2**70)),
    ):
        assert open_image(render_placeholder(case)).size == (case.width, case.height)


@pytest.mark.parametrize(
    "bad",
    [
        {"format": "gif"},
        {"format": "JPEG"},
        {"width": 0},
        {"height": -5},
        {"width": 20_000},
        {"width": 16_000, "height": 16_000},
        {"quality": 0},
        {"quality": 101},
    ],
)
def test_spec_validation(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        spec(**bad)


def test_format_helpers() -> None:
    assert [content_type(fmt) for fmt in FORMATS] == ["image/jpeg", "image/png", "image/webp"]
    assert [file_extension(fmt) for fmt in FORMATS] == ["jpg", "png", "webp"]
    assert normalize_format("JPG") == "jpeg"
    assert normalize_format(" image/PNG ") == "png"
    assert content_type("jpg") == "image/jpeg"
    with pytest.raises(ValueError):
        normalize_format("bmp")


# --- cache ------------------------------------------------------------------------------------------------


def test_cache_hit_returns_the_same_object() -> None:
    cache = PlaceholderCache()
    first = cache.get(spec())
    assert cache.get(spec()) is first
    assert len(cache) == 1
    assert cache.size_bytes == len(first)
    assert cache.get(spec(seed=1)) is not first
    assert len(cache) == 2


def test_cache_evicts_least_recently_used_within_max_bytes() -> None:
    specs = [spec(seed=seed) for seed in range(3)]
    sizes = [len(render_placeholder(item)) for item in specs]
    cache = PlaceholderCache(max_bytes=sizes[0] + sizes[1] + min(sizes[2], sizes[1]) - 1)
    kept = cache.get(specs[0])
    cache.get(specs[1])
    assert cache.get(specs[0]) is kept  # now specs[1] is the least recently used
    cache.get(specs[2])
    assert specs[0] in cache
    assert specs[1] not in cache
    assert specs[2] in cache
    assert cache.size_bytes <= cache.max_bytes
    assert cache.size_bytes == sizes[0] + sizes[2]


def test_cache_never_holds_more_than_max_bytes() -> None:
    specs = [spec(seed=seed, width=48, height=48) for seed in range(12)]
    budget = sum(len(render_placeholder(item)) for item in specs[:4])  # room for about four
    cache = PlaceholderCache(max_bytes=budget)
    for item in specs:
        cache.get(item)
        assert cache.size_bytes <= budget
    assert 0 < len(cache) < 12


def test_cache_skips_items_larger_than_the_budget() -> None:
    cache = PlaceholderCache(max_bytes=10)
    data = cache.get(spec())
    assert open_image(data).size == (96, 64)
    assert len(cache) == 0
    assert cache.size_bytes == 0


def test_cache_is_safe_under_threads() -> None:
    cache = PlaceholderCache()
    target = spec(width=300, height=200)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: cache.get(target), range(16)))
    assert len({id(result) for result in results}) == 1
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0
    assert cache.size_bytes == 0


# --- input image decoding ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    return encoded(Image.new("RGB", (33, 17), (200, 120, 40)), "PNG")


@pytest.fixture(scope="module")
def jpeg_bytes() -> bytes:
    return encoded(Image.new("RGB", (40, 30), (10, 120, 240)), "JPEG")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_decode_png_data_url(png_bytes: bytes) -> None:
    ref = decode_image_reference("data:image/png;base64," + b64(png_bytes))
    assert ref.kind == "data_url"
    assert (ref.width, ref.height, ref.format) == (33, 17, "png")
    assert ref.mime_type == "image/png"
    assert ref.declared_mime_type == "image/png"
    assert ref.data == png_bytes
    assert ref.byte_size == len(png_bytes)
    assert ref.url is None


def test_decode_raw_base64_jpeg(jpeg_bytes: bytes) -> None:
    ref = decode_image_reference(b64(jpeg_bytes))
    assert ref.kind == "base64"
    assert (ref.width, ref.height, ref.format) == (40, 30, "jpeg")
    assert ref.mime_type == "image/jpeg"
    assert ref.declared_mime_type is None


def test_decode_tolerates_wrapping_urlsafe_alphabet_and_missing_padding(jpeg_bytes: bytes) -> None:
    text = b64(jpeg_bytes)
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    assert decode_image_reference(f"  {wrapped}\n").format == "jpeg"
    urlsafe = base64.urlsafe_b64encode(jpeg_bytes).decode("ascii").rstrip("=")
    assert decode_image_reference(urlsafe).format == "jpeg"


def test_decode_webp_and_mislabelled_data_url(jpeg_bytes: bytes) -> None:
    webp = encoded(Image.new("RGB", (12, 9), (1, 2, 3)), "WEBP")
    assert decode_image_reference("data:image/webp;base64," + b64(webp)).format == "webp"
    # Clients often label everything image/png; the bytes win and the label is kept for reference.
    ref = decode_image_reference("data:image/png;base64," + b64(jpeg_bytes))
    assert (ref.format, ref.mime_type, ref.declared_mime_type) == ("jpeg", "image/jpeg", "image/png")
    assert decode_image_reference("data:;base64," + b64(jpeg_bytes)).declared_mime_type is None
    assert decode_image_reference("data:base64," + b64(jpeg_bytes)).format == "jpeg"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/cat.png",
        "https://cdn.example.com:8443/a/b.jpg?sig=abc&x=1",
        "HTTPS://EXAMPLE.COM/x",
    ],
)
def test_decode_http_urls_without_fetching(url: str) -> None:
    ref = decode_image_reference(url)
    assert ref.kind == "url"
    assert ref.url == url
    assert ref.width is None
    assert ref.height is None
    assert ref.data is None


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    # A few dozen bytes that claim a gigantic image: the classic decompression-bomb shape.
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"") + png_chunk(b"IEND", b"")


def invalid_cases() -> list[tuple[str, str]]:
    png = encoded(Image.new("RGB", (33, 17), (200, 120, 40)), "PNG")
    gif = encoded(Image.new("P", (4, 4)), "GIF")
    return [
        ("", "empty"),
        ("   \n", "empty"),
        ("ftp://example.com/cat.png", "Unsupported URL scheme 'ftp:'"),
        ("file:///etc/passwd", "Unsupported URL scheme 'file:'"),
        ("javascript:alert(1)", "Unsupported URL scheme 'javascript:'"),
        ("http://", "no host name"),
        ("https:///path/only.png", "no host name"),
        ("http://example.com/a cat.png", "whitespace"),
        ("http://example.com:99999/a.png", "malformed"),
        ("not base64 at all!", "not a valid URL, data URL or Base64-encoded image"),
        ("www.example.com/cat.png", "not a valid URL, data URL or Base64-encoded image"),
        ("abcde", "length"),
        ("QUJD=RE=", "misplaced padding"),
        (b64(b"hello, this is plain text and not an image"), "not a recognised image"),
        ("data:image/png;base64", "no ','"),
        ("data:image/png,rawbytes", "must be Base64-encoded"),
        ("data:text/plain;base64," + b64(png), "'text/plain' is not an image type"),
        ("data:image/png;base64,", "no data"),
        ("data:image/png;base64,%%%%", "data URL payload is not valid Base64"),
        ("data:image/png;base64," + b64(png[: len(png) // 2]), "corrupt or truncated"),
        (b64(png[:-12] + b"\x00" * 12), "corrupt or truncated"),
        (b64(gif), "Image format GIF is not supported; use JPEG, PNG, WEBP"),
        (b64(png_header_only(200_000, 200_000)), "too many pixels"),
        (b64(png_header_only(8_000, 8_000)), "8000x8000 pixels, more than the 50,000,000 pixel limit"),
    ]


@pytest.mark.parametrize(("value", "fragment"), invalid_cases())
def test_decode_rejects_invalid_values(value: str, fragment: str) -> None:
    with pytest.raises(InvalidImageReference) as caught:
        decode_image_reference(value)
    assert fragment in caught.value.message
    assert str(caught.value) == caught.value.message
    assert isinstance(caught.value, ValueError)


def test_decode_enforces_byte_limit(png_bytes: bytes) -> None:
    with pytest.raises(InvalidImageReference, match="larger than the"):
        decode_image_reference(b64(png_bytes), max_bytes=len(png_bytes) - 1)
    assert decode_image_reference(b64(png_bytes), max_bytes=len(png_bytes)).width == 33
    # Huge input is refused from its length, before anything is decoded.
    with pytest.raises(InvalidImageReference, match=r"0\.5 MiB limit"):
        decode_image_reference("A" * 2_000_000, max_bytes=512 * 1024)


def test_decode_enforces_pixel_limit(png_bytes: bytes) -> None:
    with pytest.raises(InvalidImageReference, match=r"33x17 pixels, more than the 500 pixel limit"):
        decode_image_reference(b64(png_bytes), max_pixels=500)


def test_decode_rejects_non_strings() -> None:
    with pytest.raises(InvalidImageReference, match="must be a string"):
        decode_image_reference(b"data:image/png;base64,AAAA")  # type: ignore[arg-type]
