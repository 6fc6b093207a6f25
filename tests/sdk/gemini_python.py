"""Drive the official google-genai SDK, unchanged but for its base URL, and print what it saw as one JSON line.

    python gemini_python.py BASE_URL SCENARIO [OPTIONS_JSON]

BASE_URL is where the SDK is pointed (`http_options.base_url`), e.g. http://127.0.0.1:PORT/gemini. OPTIONS_JSON
may set model, prompt, aspect_ratio, image_size, api_version (default v1beta), api_key, polls (Batch polls before
giving up) and poll_seconds (the pause between them). The result is `{"ok": true, ...}` or, when the SDK raised,
`{"ok": false, "error": {...}}` with the exception's type and the attributes users read (code, status, message,
details). Runs in a virtualenv holding only google-genai (tests/sdk/gemini-sdks.json); exits 0 either way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import struct
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

from google import genai
from google.genai import errors, types

BASE_URL, SCENARIO = sys.argv[1], sys.argv[2]
OPTIONS: dict[str, Any] = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
MODEL = OPTIONS.get("model", "gemini-3.1-flash-image-preview")
PROMPT = OPTIONS.get("prompt", "A banana astronaut floating above the Earth")
API_KEY = OPTIONS.get("api_key", "sim-gemini-key")


def http_options(**extra: Any) -> types.HttpOptions:
    return types.HttpOptions(base_url=BASE_URL, api_version=OPTIONS.get("api_version", "v1beta"), **extra)


def client() -> genai.Client:
    return genai.Client(api_key=API_KEY, http_options=http_options())


def config() -> types.GenerateContentConfig:
    image = {key: OPTIONS[name] for key, name in (("aspect_ratio", "aspect_ratio"), ("image_size", "image_size"))
             if name in OPTIONS}
    return types.GenerateContentConfig(
        response_modalities=OPTIONS.get("modalities", ["TEXT", "IMAGE"]),
        image_config=types.ImageConfig(**image) if image else None,
        candidate_count=OPTIONS.get("candidate_count"),
        seed=OPTIONS.get("seed"),
    )


def png(width: int, height: int) -> bytes:
    """A small real PNG to send as a reference image (no imaging library in this environment)."""
    rows = b"".join(b"\x00" + b"\xf4\xd0\x3f" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def image_size(data: bytes) -> list[int] | None:
    """(width, height) of a PNG or JPEG, read from its header as a user's imaging library would."""
    if data.startswith(b"\x89PNG"):
        return list(struct.unpack(">II", data[16:24]))
    if data.startswith(b"\xff\xd8"):
        offset = 2
        while offset + 9 < len(data):
            marker, length = data[offset + 1], struct.unpack(">H", data[offset + 2:offset + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[offset + 5:offset + 9])
                return [width, height]
            offset += 2 + length
    return None


def describe(response: types.GenerateContentResponse) -> dict[str, Any]:
    parts = []
    for part in response.parts or []:
        image = part.as_image()
        entry: dict[str, Any] = {"thought": bool(part.thought), "signed": part.thought_signature is not None}
        if image is not None:
            entry |= {"kind": "image", "mime_type": image.mime_type, "size": image_size(image.image_bytes or b""),
                      "sha256": hashlib.sha256(image.image_bytes or b"").hexdigest()}
        elif part.text is not None:
            entry |= {"kind": "text", "text": part.text}
        parts.append(entry)
    candidate = (response.candidates or [None])[0]
    usage = response.usage_metadata
    return {
        "parts": parts,
        "text": response.text if response.parts else None,
        "finish_reason": candidate.finish_reason.value if candidate and candidate.finish_reason else None,
        "candidates": None if response.candidates is None else len(response.candidates),
        "block_reason": response.prompt_feedback.block_reason.value
        if response.prompt_feedback and response.prompt_feedback.block_reason else None,
        "model_version": response.model_version,
        "response_id": response.response_id,
        "usage": usage.model_dump(mode="json", exclude_none=True) if usage else None,
    }


def stream_summary(chunks: list[types.GenerateContentResponse]) -> dict[str, Any]:
    merged = [describe(chunk) for chunk in chunks]
    return {"events": len(chunks), "parts": [p for m in merged for p in m["parts"]],
            "finish_reason": merged[-1]["finish_reason"] if merged else None,
            "usage": merged[-1]["usage"] if merged else None}


# Each scenario keeps its Client in a local name: google-genai 3.x closes the HTTP client when the Client object
# is collected, so `client().models.generate_content(...)` fails with "the client has been closed".


def generate() -> dict[str, Any]:
    sdk = client()
    return describe(sdk.models.generate_content(model=MODEL, contents=PROMPT, config=config()))


def generate_async() -> dict[str, Any]:
    async def run() -> types.GenerateContentResponse:
        sdk = client()
        return await sdk.aio.models.generate_content(model=MODEL, contents=PROMPT, config=config())

    return describe(asyncio.run(run()))


def stream() -> dict[str, Any]:
    sdk = client()
    return stream_summary(list(sdk.models.generate_content_stream(model=MODEL, contents=PROMPT, config=config())))


def stream_async() -> dict[str, Any]:
    async def run() -> list[types.GenerateContentResponse]:
        sdk = client()
        return [chunk async for chunk in await sdk.aio.models.generate_content_stream(
            model=MODEL, contents=PROMPT, config=config())]

    return stream_summary(asyncio.run(run()))


def edit_inline() -> dict[str, Any]:
    sdk = client()
    reference = types.Part.from_bytes(data=png(64, 48), mime_type="image/png")
    return describe(sdk.models.generate_content(model=MODEL, contents=[reference, PROMPT], config=config()))


def upload(sdk: genai.Client, data: bytes, mime_type: str, name: str) -> types.File:
    settings = types.UploadFileConfig(mime_type=mime_type, display_name=name)
    return sdk.files.upload(file=io.BytesIO(data), config=settings)


def edit_with_file() -> dict[str, Any]:
    sdk = client()
    uploaded = upload(sdk, png(64, 48), "image/png", "reference.png")
    reference = types.Part.from_uri(file_uri=uploaded.uri or "", mime_type=uploaded.mime_type)
    answer = describe(sdk.models.generate_content(model=MODEL, contents=[reference, PROMPT], config=config()))
    return {"file": uploaded.model_dump(mode="json", exclude_none=True), **answer}


def files() -> dict[str, Any]:
    sdk = client()
    uploaded = upload(sdk, png(8, 8), "image/png", "tiny.png")
    fetched = sdk.files.get(name=uploaded.name or "")
    listed = [f.name for f in sdk.files.list(config={"page_size": 10})]
    sdk.files.delete(name=uploaded.name or "")
    try:
        sdk.files.get(name=uploaded.name or "")
        after_delete: Any = "still there"
    except errors.APIError as exc:
        after_delete = {"code": exc.code, "status": exc.status}
    return {"uploaded": uploaded.model_dump(mode="json", exclude_none=True), "state": fetched.state.value
            if fetched.state else None, "listed": listed, "after_delete": after_delete}


def wait_for(sdk: genai.Client, name: str) -> types.BatchJob:
    job = sdk.batches.get(name=name)
    for _ in range(int(OPTIONS.get("polls", 200))):
        if job.done:
            break
        time.sleep(float(OPTIONS.get("poll_seconds", 0.05)))
        job = sdk.batches.get(name=name)
    return job


def inline_requests() -> list[types.InlinedRequest]:
    return [types.InlinedRequest(contents=f"{PROMPT}, take {n}", metadata={"key": f"take-{n}"}, config=config())
            for n in (1, 2)]


def result(key: Any, response: types.GenerateContentResponse | None, error: Any) -> dict[str, Any]:
    return {"key": key, **(describe(response) if response else {"error": error})}


def batch_summary(sdk: genai.Client, job: types.BatchJob) -> dict[str, Any]:
    summary: dict[str, Any] = {"name": job.name, "state": job.state.value if job.state else None, "done": job.done}
    if job.dest and job.dest.inlined_responses:
        summary["results"] = [
            result((item.metadata or {}).get("key"), item.response,
                   item.error.model_dump(mode="json", exclude_none=True) if item.error else None)
            for item in job.dest.inlined_responses
        ]
    if job.dest and job.dest.file_name:  # file mode: the results are a JSONL file to download
        lines = [json.loads(line) for line in sdk.files.download(file=job.dest.file_name).decode().splitlines()
                 if line.strip()]
        summary["results_file"] = job.dest.file_name
        summary["results"] = [
            result(line.get("key"), types.GenerateContentResponse.model_validate(line["response"])
                   if "response" in line else None, line.get("error"))
            for line in lines
        ]
    return summary


def batch_inline() -> dict[str, Any]:
    sdk = client()
    created = sdk.batches.create(model=MODEL, src=inline_requests(), config={"display_name": "sim-inline"})
    first_state = created.state.value if created.state else None
    job = wait_for(sdk, created.name or "")
    listed = [j.name for j in sdk.batches.list(config={"page_size": 5})]
    sdk.batches.delete(name=created.name or "")
    return {"created_state": first_state, "listed": listed, **batch_summary(sdk, job)}


def batch_file() -> dict[str, Any]:
    sdk = client()
    lines = [json.dumps({"key": f"line-{n}", "request": {"contents": [{"parts": [{"text": f"{PROMPT} #{n}"}]}],
                                                          "generationConfig": {"responseModalities": ["IMAGE"]}}})
             for n in (1, 2)]
    source = upload(sdk, ("\n".join(lines) + "\n").encode(), "application/jsonl", "batch-input.jsonl")
    created = sdk.batches.create(model=MODEL, src=source.name or "", config={"display_name": "sim-file"})
    return {"input_file": source.name, **batch_summary(sdk, wait_for(sdk, created.name or ""))}


def batch_cancel() -> dict[str, Any]:
    sdk = client()
    created = sdk.batches.create(model=MODEL, src=inline_requests(), config={"display_name": "sim-cancel"})
    sdk.batches.cancel(name=created.name or "")
    job = sdk.batches.get(name=created.name or "")
    return {"name": job.name, "state": job.state.value if job.state else None, "done": job.done}


def vertex_express() -> dict[str, Any]:
    sdk = genai.Client(vertexai=True, api_key=API_KEY,
                       http_options=types.HttpOptions(base_url=BASE_URL, api_version=OPTIONS.get("api_version", "v1")))
    return describe(sdk.models.generate_content(model=MODEL, contents=PROMPT, config=config()))


def vertex_project() -> dict[str, Any]:
    # A ready-made access token: google-auth never reaches Google for it (no refresh, no metadata server).
    from google.oauth2.credentials import Credentials

    credentials = Credentials(token=OPTIONS.get("token", "sim-access-token"))
    sdk = genai.Client(vertexai=True, project=OPTIONS.get("project", "sim-project"),
                       location=OPTIONS.get("location", "us-central1"), credentials=credentials,
                       http_options=types.HttpOptions(base_url=BASE_URL, api_version=OPTIONS.get("api_version", "v1")))
    return describe(sdk.models.generate_content(model=MODEL, contents=PROMPT, config=config()))


def models_list() -> dict[str, Any]:
    sdk = client()
    pager = sdk.models.list(config=types.ListModelsConfig(page_size=OPTIONS.get("page_size", 2)))
    return {"names": [model.name for model in pager]}  # the pager fetches each following page as it goes


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "generate": generate, "generate_async": generate_async, "stream": stream, "stream_async": stream_async,
    "edit_inline": edit_inline, "edit_with_file": edit_with_file, "files": files, "batch_inline": batch_inline,
    "batch_file": batch_file, "batch_cancel": batch_cancel, "vertex_express": vertex_express,
    "vertex_project": vertex_project, "models_list": models_list,
}


def main() -> None:
    try:
        result: dict[str, Any] = {"ok": True, **SCENARIOS[SCENARIO]()}
    except errors.APIError as exc:
        result = {"ok": False, "error": {"type": type(exc).__name__, "code": exc.code, "status": exc.status,
                                         "message": exc.message, "details": exc.details}}
    except Exception as exc:  # an SDK-side refusal is an outcome the test reads, not a crash
        result = {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}
    print(json.dumps(result, default=lambda value: base64.b64encode(value).decode()
                     if isinstance(value, bytes) else str(value)))


if __name__ == "__main__":
    sys.exit(main())
