"""`nanobanana-sim serve`: every provider on one port, or one provider at the root."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from simulator import __version__
from simulator.clock import Clock, RealClock, VirtualClock
from simulator.providers import REGISTRY, available
from simulator.self_check import Mode as SelfCheckMode

EXAMPLE_BODY = {
    "steps": [{
        "$type": "imageGen",
        "input": {"engine": "google", "model": "nano-banana-2", "prompt": "A banana astronaut, studio light",
                  "aspectRatio": "16:9", "resolution": "1K", "numImages": 1},
    }],
}


def _parse_option(text: str) -> tuple[str, str, Any]:
    name, sep, raw = text.partition("=")
    slug, dot, option = name.partition(".")
    if not sep or not dot:
        raise argparse.ArgumentTypeError(f"expected PROVIDER.OPTION=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return slug, option, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanobanana-sim", description=__doc__)
    parser.add_argument("--version", action="version", version=f"nanobanana-sim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the simulated provider APIs over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--provider", choices=sorted(REGISTRY), help="also serve this provider at the root")
    serve.add_argument("--seed", type=int, default=0, help="seed for IDs, timings and pixels (default 0)")
    serve.add_argument("--speed", type=float, default=1.0,
                       help="real clock speed-up: 50 makes a 20 s queue take 0.4 s (default 1)")
    serve.add_argument("--virtual-clock", action="store_true",
                       help="start a virtual clock that only moves via POST /_sim/clock/advance")
    serve.add_argument("--autojump", action="store_true",
                       help="with --virtual-clock: a waiting request jumps the clock to what it waits for")
    serve.add_argument("--scenario", action="append", default=[], metavar="NAME|FILE",
                       help="load a failure scenario: a shipped name (see contracts/scenarios) or a YAML file")
    serve.add_argument("--external-webhooks", action="store_true",
                       help="deliver callbacks to non-loopback hosts too (default: loopback receivers only)")
    serve.add_argument("--tick", type=float, default=0.0, metavar="SECONDS",
                       help="with --virtual-clock: move the clock on this much before every provider request")
    serve.add_argument("--option", action="append", type=_parse_option, default=[], metavar="P.NAME=VALUE",
                       help="set a provider option, e.g. civitai.blob_redirect_status=301 (repeatable)")
    serve.add_argument("--self-check", choices=[mode.value for mode in SelfCheckMode], default=None,
                       help="check every answer and callback against the provider's schemas: record (default; "
                            "findings in the journal and the log), strict (a broken answer becomes a 500), off")
    spec = sub.add_parser("openapi", help="print one provider's contract as an OpenAPI 3.1 document (JSON)")
    spec.add_argument("slug", choices=sorted(REGISTRY), metavar="SLUG",
                      help=f"the provider: {', '.join(sorted(REGISTRY))}")
    spec.add_argument("--output", "-o", metavar="FILE", help="write the document to FILE instead of stdout")
    spec.add_argument("--server-url", metavar="URL",
                      help="the one server to list (default: the real host, then http://127.0.0.1:8000/SLUG)")
    return parser


def _clock(args: argparse.Namespace) -> Clock:
    if args.virtual_clock:
        return VirtualClock(autojump=args.autojump, tick=args.tick)
    return RealClock(speed=args.speed)


def banner(base: str, provider: str | None) -> str:
    root = f"{base}/civitai" if provider != "civitai" else base
    body = json.dumps(EXAMPLE_BODY, separators=(",", ":"))
    lines = [
        f"nanobanana-sim {__version__} serving on {base}",
        *(f"  {slug:<8} {base}/{slug}" for slug in available()),
        f"  control  {base}/_sim",
        "",
        "Try it (any non-empty token is accepted):",
        f"  curl -s -X POST '{root}/v2/consumer/workflows?wait=60' \\",
        "    -H 'Authorization: Bearer sim-token' -H 'Content-Type: application/json' \\",
        f"    -d '{body}'",
    ]
    return "\n".join(lines)


def serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from simulator.faults import scenario
    from simulator.faults.plan import PlanError
    from simulator.options import OptionError
    from simulator.sim import KEEP_ALIVE, Simulator

    options: dict[str, dict[str, Any]] = {}
    for slug, name, value in args.option:
        options.setdefault(slug, {})[name] = value
    try:
        sim = Simulator(seed=args.seed, clock=_clock(args), default_provider=args.provider, options=options,
                        self_check=args.self_check)
    except (ValueError, KeyError) as exc:
        print(f"nanobanana-sim: {exc}", file=sys.stderr)
        return 2
    sim.engine.webhooks.allow_external = args.external_webhooks
    try:
        for name in args.scenario:
            sim.load_scenario(scenario.load(name))
    except (PlanError, OptionError, KeyError) as exc:
        print(f"nanobanana-sim: {exc}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY on accepted sockets
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        # Listen before printing the banner, so the curl it shows can be run the moment it appears.
        sock.listen(2048)
    except OSError as exc:
        print(f"nanobanana-sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(banner(f"http://{host}:{sock.getsockname()[1]}", args.provider), flush=True)
    if args.scenario:
        print(f"\nScenarios in force: {', '.join(s['name'] for s in sim.scenarios)} (GET /_sim/faults)", flush=True)
    config = uvicorn.Config(
        sim.app, log_level="warning", lifespan="off", timeout_keep_alive=KEEP_ALIVE, date_header=False
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0


def openapi(args: argparse.Namespace) -> int:
    from pathlib import Path

    from simulator.openapi import openapi_document

    text = json.dumps(openapi_document(args.slug, server_url=args.server_url), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"nanobanana-sim: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "openapi":
        return openapi(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
