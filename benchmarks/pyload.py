"""A small HTTP/1.1 load generator in its own process: the fallback when wrk is missing, and the tool for what
wrk cannot do (an exact number of requests, thousands of connections held open).

    python benchmarks/pyload.py < job.json      # prints one JSON result line

The job: {"host", "port", "method", "path", "headers", "body", "connections", and "requests" (a count) or
"duration" (seconds), optionally "rate" (requests a second, paced)}; `{uuid}` in the body becomes a fresh
UUID per request. With "hold": true every connection sends one request and waits for its answer (long
polls); "ready" is printed once all are sent.
Raw asyncio streams and keep-alive: on one core it drives several thousand requests a second, enough for
the smoke run and the counted jobs; the throughput table uses wrk.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any


def _request_bytes(job: dict[str, Any]) -> bytes:
    body = job.get("body")
    if body is not None and "{uuid}" in body:
        body = body.replace("{uuid}", str(uuid.uuid4()))
    data = (body or "").encode()
    lines = [f"{job['method']} {job['path']} HTTP/1.1", f"Host: {job['host']}:{job['port']}"]
    lines += [f"{name}: {value}" for name, value in job.get("headers", {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    remaining = [int(job.get("requests") or 0)]
    deadline = time.monotonic() + float(job.get("duration") or 0)
    counted = bool(job.get("requests"))

    def more() -> bool:
        if counted:
            remaining[0] -= 1
            return remaining[0] >= 0
        return time.monotonic() < deadline

    # A paced job ("rate", requests a second over all connections) measures latency at a load the server
    # can carry; an unpaced one measures what it can carry.
    interval = int(job["connections"]) / float(job["rate"]) if job.get("rate") else 0.0

    async def worker(offset: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(job["host"], job["port"])
        due = time.perf_counter() + offset
        try:
            while more():
                if interval:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    due += interval
                started = time.perf_counter()
                writer.write(_request_bytes(job))
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    count = int(job["connections"])
    await asyncio.gather(*(worker(interval * n / count) for n in range(count)))
    return _summary(latencies, statuses, errors, time.perf_counter() - started)


async def _hold(job: dict[str, Any]) -> dict[str, Any]:
    """Every connection sends one request and waits for its answer; `ready` once all are sent."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    errors = 0
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    started = time.perf_counter()
    for _ in range(int(job["connections"])):
        reader, writer = await asyncio.open_connection(job["host"], job["port"])
        writer.write(_request_bytes(job))
        opened.append((reader, writer, time.perf_counter()))
    await asyncio.gather(*(writer.drain() for _, writer, _ in opened))
    print(json.dumps({"ready": len(opened)}), flush=True)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sent: float) -> None:
        nonlocal errors
        try:
            status = await _read_response(reader)
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(time.perf_counter() - sent)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(answer(*item) for item in opened))
    return _summary(latencies, statuses, errors, time.perf_counter() - started)


def _summary(latencies: list[float], statuses: dict[int, int], errors: int, seconds: float) -> dict[str, Any]:
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    return {"requests": len(ordered), "seconds": seconds, "p50_ms": quantile(0.5), "p99_ms": quantile(0.99),
            "statuses": {str(code): count for code, count in sorted(statuses.items())}, "errors": errors}


def main() -> None:
    import resource

    job = json.loads(sys.stdin.read())
    run: Any = asyncio.run
    try:
        import uvloop  # the bench extra installs it; the plain loop does the same, more slowly

        run = uvloop.run
    except ImportError:
        pass

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, int(job["connections"]) + 256)), hard))
    result = run(_hold(job) if job.get("hold") else _run(job))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
