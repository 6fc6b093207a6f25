"""`nanobanana-sim`: serve the simulated provider APIs, show the settings, list what is shipped, export contracts."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator import __version__
from simulator.clock import Clock, RealClock, VirtualClock
from simulator.providers import REGISTRY
from simulator.settings import (
    RANDOM_TOKEN,
    SETTINGS,
    Resolved,
    Setting,
    SettingsError,
    display,
    flags_from,
    is_loopback,
    json_text,
    resolve,
)

if TYPE_CHECKING:
    import socket

    from simulator.serving import SimulatorServer

PRECEDENCE = (
    "Every setting can also come from the environment (NANOBANANA_PORT, NANOBANANA_SEED, ...; shown in brackets) or "
    "a TOML file (--config sim.toml, keys as the flags without dashes: port = 9000). The command line overrides the "
    "file, the file overrides the environment; `nanobanana-sim config` prints the outcome and where each came from."
)


def _argument_type(setting: Setting) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            return setting.parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = setting.name
    return parse


def add_settings(parser: argparse.ArgumentParser) -> None:
    """One argument per row of the settings table; an absent flag stays out of the namespace (it did not speak)."""
    for setting in SETTINGS:
        default = f"; default {display(setting, setting.default)}" if setting.default not in (None, ()) else ""
        options: dict[str, Any] = {"dest": setting.dest, "default": argparse.SUPPRESS,
                                   "help": f"{setting.help} [{setting.env}{default}]"}
        if setting.switch:
            parser.add_argument(setting.flag, action=argparse.BooleanOptionalAction, **options)
        else:
            parser.add_argument(setting.flag, type=_argument_type(setting), metavar=setting.metavar,
                                action="append" if setting.repeat else "store", **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanobanana-sim", description=__doc__)
    parser.add_argument("--version", action="version", version=f"nanobanana-sim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the simulated provider APIs over HTTP", epilog=PRECEDENCE,
                           description="Serve every provider on one port (and one at the root with --provider).")
    add_settings(serve)
    config = sub.add_parser("config", help="print the settings `serve` would use and where each comes from",
                            epilog=PRECEDENCE, description="Takes serve's flags; prints, does not serve.")
    add_settings(config)
    scenarios = sub.add_parser("scenarios", help="list the shipped failure scenarios, one line each")
    scenarios.add_argument("name", nargs="?", metavar="NAME", help="print this scenario's description and rules")
    options = sub.add_parser("options", help="list the providers' named compatibility options, one line each")
    options.add_argument("slug", nargs="?", choices=sorted(REGISTRY), metavar="SLUG",
                         help=f"only this provider: {', '.join(sorted(REGISTRY))}")
    add_proxy_commands(sub)
    spec = sub.add_parser("openapi", help="print one provider's contract as an OpenAPI 3.1 document (JSON)")
    spec.add_argument("slug", choices=sorted(REGISTRY), metavar="SLUG",
                      help=f"the provider: {', '.join(sorted(REGISTRY))}")
    spec.add_argument("--output", "-o", metavar="FILE", help="write the document to FILE instead of stdout")
    spec.add_argument("--server-url", metavar="URL",
                      help="the one server to list (default: the real host, then http://127.0.0.1:8000/SLUG)")
    return parser


def add_proxy_commands(sub: Any) -> None:
    proxy = sub.add_parser(
        "proxy", help="a validating reverse proxy in front of a real provider, recording redacted cassettes",
        epilog=PRECEDENCE, description="Serve the provider's own routes at the root and forward each request to "
        "--upstream with the caller's key (never stored), checking requests and answers against the schemas.")
    proxy.add_argument("--upstream", required=True, metavar="URL",
                       help="the provider's base URL, e.g. https://api.runware.ai")
    proxy.add_argument("--upstream-ws", metavar="URL",
                       help="the provider's WebSocket base URL, where it is not --upstream's host "
                            "(e.g. wss://ws-api.runware.ai); default: --upstream as ws:// or wss://")
    proxy.add_argument("--record", metavar="FILE", help="write a redacted JSON Lines cassette of the session")
    proxy.add_argument("--block-invalid", action="store_true",
                       help="refuse a request that breaks the documented contract instead of forwarding it")
    proxy.add_argument("--hash-prompts", action="store_true",
                       help="keep prompts in the cassette only as stable hashes (a replay still matches them)")
    proxy.add_argument("--public-url", metavar="URL",
                       help="where the provider can reach this proxy (a tunnel): callbacks then come back through "
                            "it and are recorded (on loopback upstreams they always do)")
    proxy.add_argument("--keep-images", action="store_true",
                       help="also keep binary answers (images) beside the cassette, in FILE.blobs/, for replay")
    add_settings(proxy)
    cassette = sub.add_parser("cassette", help="work with recorded cassettes")
    actions = cassette.add_subparsers(dest="action", required=True, metavar="ACTION")
    lint = actions.add_parser("lint", help="fail (exit 1) if a cassette holds anything shaped like a secret")
    lint.add_argument("files", nargs="+", metavar="FILE")
    drift = sub.add_parser("drift", help="compare recorded real answers with the documented contract and the "
                                         "simulator's answers; exit 1 on drift")
    drift.add_argument("files", nargs="+", metavar="FILE")
    drift.add_argument("--format", choices=("text", "json"), default="text", help="report format (default text)")
    drift.add_argument("--strict", action="store_true", help="warnings fail too, not only errors")
    drift.add_argument("--junit", metavar="FILE",
                       help="also write JUnit XML: a test case per recorded interaction, a failure per drift")
    drift.add_argument("--baseline", metavar="PREVIOUS.json",
                       help="a previous `drift --format json` report: report (and fail on) only drift not in it")


def fail(message: str) -> int:
    print(f"nanobanana-sim: {message}", file=sys.stderr)
    return 2


def settings_of(args: argparse.Namespace, environ: Mapping[str, str]) -> Resolved | None:
    try:
        return resolve(flags_from(args), environ)
    except SettingsError as exc:
        for problem in exc.problems:
            fail(problem)
        return None


def table(rows: Iterable[Sequence[str]]) -> str:
    rows = list(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    )


# -- serve ---------------------------------------------------------------------------------------------------------


def make_clock(settings: Resolved) -> Clock:
    if settings["virtual-clock"]:
        return VirtualClock(autojump=settings["autojump"], tick=settings["tick"])
    return RealClock(speed=settings["speed"])


def serve(settings: Resolved, upstream: argparse.Namespace | None = None) -> int:
    from simulator import heap, logs, serving
    from simulator.access_log import AccessLog
    from simulator.banner import Facts, banner, goodbye
    from simulator.connections import Limits
    from simulator.faults import scenario
    from simulator.faults.plan import PlanError
    from simulator.options import OptionError
    from simulator.proxy import proxy as install_proxy
    from simulator.proxy import replay as install_replay
    from simulator.proxy.cassette import load as load_cassette
    from simulator.sim import Simulator

    quiet = settings["quiet"]
    level = settings["log-level"] if not quiet or settings["log-level"] == "error" else "warning"
    logs.configure(level, settings["log-format"], background=True)
    token, made = settings["control-token"], False
    if token == RANDOM_TOKEN:
        token, made = secrets.token_urlsafe(18), True
    options: dict[str, dict[str, Any]] = {}
    for slug, name, value in settings["option"]:
        options.setdefault(slug, {})[name] = value
    signing_key = settings["signing-key"]
    root = settings["provider"]
    try:
        cassette = load_cassette(Path(settings["replay"])) if settings["replay"] else None
        if cassette is not None and root is None:
            root = cassette.provider
        # A relay answers every provider the simulator serves: proxy and replay serve theirs alone.
        only = [root] if root is not None and (upstream is not None or cassette is not None) else None
        sim = Simulator(seed=settings["seed"], clock=make_clock(settings), default_provider=root, providers=only,
                        options=options, self_check=settings["self-check"], control_token=token,
                        task_capacity=settings["task-capacity"], journal_capacity=settings["journal-capacity"],
                        signing_key=signing_key.encode() if signing_key is not None else None)
        sim.engine.webhooks.allow_external = settings["external-webhooks"]
        for name in settings["scenario"]:
            sim.load_scenario(scenario.load(name))
        if cassette is not None:
            install_replay(sim, cassette.path)
        if upstream is not None:
            record = Path(upstream.record) if upstream.record else None
            install_proxy(sim, settings["provider"], upstream.upstream, record=record,
                          block_invalid=upstream.block_invalid, hash_prompts=upstream.hash_prompts,
                          keep_images=upstream.keep_images, public_url=upstream.public_url,
                          upstream_ws=upstream.upstream_ws)
    except (ValueError, KeyError, PlanError, OptionError, OSError) as exc:
        return fail(str(exc).strip("'\""))
    try:
        sock = serving.listen(settings["host"], settings["port"])
    except OSError as exc:
        return fail(f"cannot listen on {settings['host']}:{settings['port']}: {exc.strerror or exc}")
    access = AccessLog()
    sim.engine.journal.subscribe(access)
    if not quiet:
        host, port = sock.getsockname()[:2]
        print(banner(Facts(
            base=serving.base_url(sock), bound=f"{host}:{port}", exposed=not is_loopback(host),
            providers=list(sim.providers), root_provider=root, clock=sim.clock,
            seed=settings["seed"], scenarios=[str(loaded["name"]) for loaded in sim.scenarios],
            self_check=settings["self-check"], control_token=token, token_was_made=made, config=settings["config"],
        )), flush=True)
    heap.keep_collections_short()
    started = time.monotonic()
    limits = Limits(header_timeout=settings["header-timeout"], body_timeout=settings["body-timeout"],
                    keep_alive=settings["keep-alive"], max_connections=settings["max-connections"])
    stopped_by = run_until_signalled(serving.build_server(sim, limits=limits), sock)
    if not quiet:
        print(goodbye(stopped_by, time.monotonic() - started, access.requests), flush=True)
    return 0


def run_until_signalled(server: SimulatorServer, sock: socket.socket) -> str | None:
    """Serve until SIGINT or SIGTERM; the name of the signal that stopped it (None if it stopped by itself).

    uvicorn shuts down gracefully on either signal and then raises it again for the handler it found installed:
    this one notes it, so the process ends with a goodbye and exit status 0 instead of a traceback or a kill.
    """
    stopped_by: list[str] = []

    def note(signum: int, frame: object) -> None:
        stopped_by.append(signal.Signals(signum).name)
        server.should_exit = True  # a signal before uvicorn took over the handlers still stops it

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return stopped_by[0] if stopped_by else None


# -- config, scenarios, options, openapi -----------------------------------------------------------------------------


def config(settings: Resolved) -> int:
    print(table([("setting", "value", "from"), *settings.rows()]))
    return 0


def summary(description: str) -> str:
    """A scenario's first paragraph on one line, without its leading `name —`."""
    first = " ".join(description.split("\n\n", 1)[0].split())
    return first.split(" — ", 1)[-1]


def scenarios(name: str | None) -> int:
    from simulator.faults.scenario import load, scenarios_dir, shipped

    listed = shipped()
    if name is None:
        print(table((entry["name"], summary(entry["description"])) for entry in listed))
        print("\nLoad with `nanobanana-sim serve --scenario NAME` (repeatable), or POST /_sim/scenarios "
              "{\"name\": NAME}; `nanobanana-sim scenarios NAME` prints one in full.")
        return 0
    if name not in {entry["name"] for entry in listed}:
        return fail(f"no shipped scenario {name!r}; shipped: {', '.join(entry['name'] for entry in listed)}")
    load(name)  # the shipped file parses, as `serve --scenario` would load it
    sys.stdout.write((scenarios_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
    return 0


def options(slug: str | None) -> int:
    from simulator.options import provider_data

    rows = []
    for provider in [slug] if slug else sorted(REGISTRY):
        for name, spec in sorted(provider_data(provider).get("options", {}).items()):
            choices = spec.get("choices")
            allowed = f"one of {'|'.join(map(json_text, choices))}" if choices else ""
            rows.append((f"{provider}.{name}={json_text(spec['default'])}", allowed, spec.get("doc", "")))
    print(table(rows))
    print("\nSet with `nanobanana-sim serve --option PROVIDER.NAME=VALUE` (repeatable) or PUT /_sim/options/PROVIDER; "
          "each provider's contract notes (schemas/<slug>/README.md) explain the choice.")
    return 0


def openapi(args: argparse.Namespace) -> int:
    from simulator.openapi import openapi_document

    text = json.dumps(openapi_document(args.slug, server_url=args.server_url), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        return fail(f"cannot write {args.output}: {exc.strerror or exc}")
    return 0


def cassette_lint(files: Sequence[str]) -> int:
    from simulator.proxy.cassette import CassetteError, lint

    found = 0
    for name in files:
        try:
            hits = lint(Path(name))
        except CassetteError as exc:
            return fail(str(exc))
        for hit in hits:
            print(f"{name}: {hit}")
        found += len(hits)
    if found:
        print(f"{found} secret-shaped string(s): redact them before committing", file=sys.stderr)
    return 1 if found else 0


def drift(args: argparse.Namespace) -> int:
    from simulator.proxy.cassette import CassetteError
    from simulator.proxy.ci import BaselineError, against_baseline, junit, read_baseline
    from simulator.proxy.drift import exit_status, report, text_report

    try:
        previous = read_baseline(Path(args.baseline)) if args.baseline else None
        found = report([Path(name) for name in args.files])
    except (CassetteError, BaselineError) as exc:
        return fail(str(exc))
    if previous is not None:
        found = against_baseline(found, previous, args.baseline)
    if args.junit:
        try:
            Path(args.junit).write_text(junit(found, strict=args.strict), encoding="utf-8")
        except OSError as exc:
            return fail(f"cannot write {args.junit}: {exc.strerror or exc}")
    if args.format == "json":
        print(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        print(text_report(found))
    return exit_status(found, strict=args.strict)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "config"):
        settings = settings_of(args, os.environ if environ is None else environ)
        if settings is None:
            return 2
        return serve(settings) if args.command == "serve" else config(settings)
    if args.command == "proxy":
        settings = settings_of(args, os.environ if environ is None else environ)
        if settings is not None and settings["provider"] is None:
            return fail("proxy needs --provider SLUG: the provider whose routes it serves and checks")
        return 2 if settings is None else serve(settings, upstream=args)
    if args.command == "cassette":
        return cassette_lint(args.files)
    if args.command == "drift":
        return drift(args)
    if args.command == "scenarios":
        return scenarios(args.name)
    if args.command == "options":
        return options(args.slug)
    return openapi(args)


if __name__ == "__main__":
    raise SystemExit(main())
