"""`serve`'s settings as one table: each row is a flag, an environment variable and a config-file key at once.

Where a value comes from, lowest first: the row's default, the environment (`NANOBANANA_<NAME>`), the config file
(`--config sim.toml`, TOML), the command line. `nanobanana-sim config` prints the outcome and each value's source.
A new setting is one row in `SETTINGS` (and one line in the README's serve table); combinations that cannot work
together are refused by `RULES`, each with a message that says what to write instead.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
import socket
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.options import OptionError, ProviderOptions
from simulator.providers import REGISTRY
from simulator.self_check import Mode as SelfCheckMode

ENV_PREFIX = "NANOBANANA_"
DEFAULT = "default"
# The control-token value that asks for a token made at start and shown in the banner (the Docker image's default).
RANDOM_TOKEN = "random"

Parser = Callable[[str], Any]


class SettingsError(ValueError):
    """Settings that cannot be served; each problem says what to write instead."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# -- parsers: text from a flag or the environment → a value (ValueError says what is wrong) --------------------


def text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def integer(low: int | None = None, high: int | None = None) -> Parser:
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(f"takes a whole number, not {value!r}") from None
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValueError(f"takes a whole number from {low} to {high}, not {number}")
        return number

    return parse


def number(*, above: float | None = None, at_least: float | None = None) -> Parser:
    def parse(value: str) -> float:
        try:
            result = float(value.strip())
        except ValueError:
            raise ValueError(f"takes a number, not {value!r}") from None
        if not math.isfinite(result):
            raise ValueError(f"takes a finite number, not {value!r}")
        if above is not None and result <= above:
            raise ValueError(f"takes a number above {above:g}, not {result:g}")
        if at_least is not None and result < at_least:
            raise ValueError(f"takes a number of at least {at_least:g}, not {result:g}")
        return result

    return parse


def choice(*choices: str) -> Parser:
    def parse(value: str) -> str:
        if value.strip().lower() not in choices:
            raise ValueError(f"takes one of {', '.join(choices)}, not {value!r}")
        return value.strip().lower()

    return parse


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def boolean(value: str) -> bool:
    word = value.strip().lower()
    if word not in TRUE + FALSE:
        raise ValueError(f"takes one of {'/'.join(TRUE)} or {'/'.join(FALSE)}, not {value!r}")
    return word in TRUE


ProviderOption = tuple[str, str, Any]


def provider_option(value: str) -> ProviderOption:
    """`civitai.url_ttl_seconds=60`: a named option of a known provider, with a value that option accepts."""
    name, sep, raw = value.partition("=")
    slug, dot, option = name.strip().partition(".")
    if not sep or not dot:
        raise ValueError(f"takes PROVIDER.OPTION=VALUE (e.g. civitai.url_ttl_seconds=60), not {value!r}")
    try:
        parsed: Any = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw
    return checked_option(slug, option, parsed)


def checked_option(slug: str, option: str, value: Any) -> ProviderOption:
    if slug not in REGISTRY:
        raise ValueError(f"names no known provider {slug!r} (known: {', '.join(sorted(REGISTRY))})")
    try:
        ProviderOptions(slug).set(option, value)
    except OptionError as exc:
        raise ValueError(f"{exc} (list them: nanobanana-sim options {slug})") from None
    return slug, option, value


def option_table(table: Mapping[str, Any]) -> list[ProviderOption]:
    """TOML's natural form, `[option.civitai]` with `url_ttl_seconds = 60` under it."""
    out: list[ProviderOption] = []
    for slug, values in table.items():
        if not isinstance(values, Mapping):
            raise ValueError(f"option.{slug} must be a table of option = value")
        out.extend(checked_option(slug, name, value) for name, value in values.items())
    return out


def commas(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def option_items(value: str) -> list[str]:
    """Options separated by commas; a comma inside a value (a JSON list) does not start a new option."""
    return [part.strip() for part in re.split(r",\s*(?=[\w-]+\.\w+=)", value) if part.strip()]


def json_text(value: Any) -> str:
    """A value as it is written after `--option P.NAME=` (a string bare, anything else compact JSON)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def show_option(item: ProviderOption) -> str:
    slug, name, value = item
    return f"{slug}.{name}={json_text(value)}"


# -- the table ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    name: str  # the flag without its dashes; the TOML key (`_` is read as `-`); NANOBANANA_ + it as the env var
    parse: Parser
    default: Any
    help: str
    metavar: str | None = None
    switch: bool = False  # on/off: --name / --no-name, true/false in TOML, 1/0 (yes/no, on/off) in the environment
    repeat: bool = False  # a list: the flag repeats, TOML takes an array, the environment separates by `split`
    split: Callable[[str], list[str]] = commas
    table: Callable[[Mapping[str, Any]], list[Any]] | None = None  # a TOML table form of a repeated setting
    show: Callable[[Any], str] = str
    secret: bool = False  # `config` does not print it
    in_file: bool = True

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return f"--{self.name}"


SETTINGS: tuple[Setting, ...] = (
    Setting("host", text, "127.0.0.1", "interface to bind; any but loopback needs a control token", "HOST"),
    Setting("port", integer(0, 65535), 8000, "port to listen on; 0 picks a free one", "PORT"),
    Setting("provider", choice(*sorted(REGISTRY)), None,
            "also serve this provider at the root, so a client changes only its base URL", "SLUG"),
    Setting("seed", integer(), 0, "seed for IDs, timings, pixels and probabilistic faults", "N"),
    Setting("speed", number(above=0), 1.0,
            "real clock speed-up: 1 is the providers' real timings, 50 makes a 20 s queue take 0.4 s", "X",
            show="{:g}".format),
    Setting("virtual-clock", boolean, False,
            "a virtual clock that moves only through POST /_sim/clock/advance (or --autojump, --tick)", switch=True),
    Setting("autojump", boolean, False,
            "with --virtual-clock: a waiting request jumps the clock to what it waits for", switch=True),
    Setting("tick", number(at_least=0), 0.0,
            "with --virtual-clock: move the clock on this much before every provider request", "SECONDS",
            show="{:g}".format),
    Setting("scenario", text, (), "load a failure scenario: a shipped name (list them: nanobanana-sim scenarios) "
            "or a YAML file; repeatable", "NAME|FILE", repeat=True),
    Setting("option", provider_option, (), "set a provider option, e.g. civitai.blob_redirect_status=301 "
            "(list them: nanobanana-sim options [SLUG]); repeatable", "P.NAME=VALUE",
            repeat=True, split=option_items, table=option_table, show=show_option),
    Setting("replay", text, None, "answer from this cassette (recorded by `nanobanana-sim proxy --record`) on the "
            "simulator's clock instead of simulating; its provider is served at the root unless --provider names "
            "one", "FILE"),
    Setting("external-webhooks", boolean, False,
            "deliver callbacks to non-loopback hosts too (default: loopback receivers only)", switch=True),
    Setting("self-check", choice(*(mode.value for mode in SelfCheckMode)), SelfCheckMode.RECORD.value,
            "check every answer and callback against the provider's schemas: record (findings in the journal "
            "and the log), strict (a broken answer becomes a 500), off", "{record,strict,off}"),
    Setting("log-level", choice("debug", "info", "warning", "error"), "info",
            "least severe log line shown; the access log is info", "{debug,info,warning,error}"),
    Setting("log-format", choice("text", "json"), "text",
            "log lines as readable text or one JSON object per line", "{text,json}"),
    Setting("quiet", boolean, False, "no banner, no access log: warnings and errors only", switch=True),
    Setting("control-token", text, None, f"require 'Authorization: Bearer TOKEN' on /_sim; '{RANDOM_TOKEN}' makes "
            "one at start and prints it in the banner", "TOKEN", secret=True),
    Setting("signing-key", text, None, "the key that signs image links (the same key in every process that must "
            "accept the others' links)", "KEY", secret=True),
    Setting("header-timeout", number(above=0), 10.0, "close a connection whose request line and headers take "
            "longer than this to arrive (slow or stalled clients)", "SECONDS", show="{:g}".format),
    Setting("body-timeout", number(above=0), 30.0, "close a connection whose request body pauses longer than "
            "this between two pieces", "SECONDS", show="{:g}".format),
    Setting("keep-alive", number(above=0), 75.0, "close an idle kept-alive connection after this long",
            "SECONDS", show="{:g}".format),
    Setting("max-connections", integer(1, 1_000_000), 1000, "open connections served at once; one more is "
            "answered 503 and closed (lowered to fit the process's open-file limit)", "N"),
    Setting("task-capacity", integer(1, 100_000_000), 100_000, "tasks kept in memory; past it each new task "
            "retires the oldest finished one (its images and links go with it; a running task is never retired)",
            "N"),
    Setting("journal-capacity", integer(1, 100_000_000), 50_000, "journal entries kept (the oldest dropped "
            "first; the journal also keeps at most 64 MiB)", "N"),
    Setting("config", text, None, "read settings from this TOML file: flags override it, it overrides the "
            "environment", "FILE", in_file=False),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


# -- resolution ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    values: dict[str, Any]
    sources: dict[str, str]  # "default", "flag --port", "environment NANOBANANA_PORT", "file sim.toml"

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def changed(self, name: str) -> bool:
        """Set to something other than its default (an explicit default changes nothing, so it contradicts nothing)."""
        return bool(self.values[name] != BY_NAME[name].default)

    def given_as(self, name: str) -> str:
        """How the user wrote the setting, for messages: `--tick`, `NANOBANANA_TICK`, `tick in sim.toml`."""
        source = self.sources[name]
        kind, _, where = source.partition(" ")
        return {"flag": where, "environment": where, "file": f"{name} in {where}"}.get(kind, BY_NAME[name].flag)

    def rows(self) -> Iterable[tuple[str, str, str]]:
        for setting in SETTINGS:
            yield setting.name, display(setting, self.values[setting.name]), self.sources[setting.name]


def display(setting: Setting, value: Any) -> str:
    if value is None:
        return "(none)"
    if setting.secret:
        return f"{RANDOM_TOKEN} (made at start, shown in the banner)" if value == RANDOM_TOKEN else "(set, hidden)"
    if setting.repeat:
        return ", ".join(setting.show(item) for item in value) or "(none)"
    if setting.switch:
        return "on" if value else "off"
    return setting.show(value)


def _from_text(setting: Setting, raw: str) -> Any:
    if setting.repeat:
        return tuple(setting.parse(item) for item in setting.split(raw))
    return setting.parse(raw)


def _from_toml(setting: Setting, raw: Any) -> Any:
    if setting.switch:
        if not isinstance(raw, bool):
            raise ValueError(f"takes true or false, not {raw!r}")
        return raw
    if setting.repeat:
        if isinstance(raw, Mapping) and setting.table is not None:
            return tuple(setting.table(raw))
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError(f"takes a list of strings, not {raw!r}")
        return tuple(setting.parse(item) for item in items)
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ValueError(f"takes a single value, not {raw!r}")
    return setting.parse(str(raw))


def _file_values(path: str, problems: list[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        problems.append(f"cannot read the config file {path}: {exc.strerror or exc}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path} is not valid TOML: {exc}")
        return {}
    values = {}
    for key, raw in document.items():
        name = key.replace("_", "-")
        setting = BY_NAME.get(name)
        if setting is not None and not setting.in_file:
            problems.append(f"{path}: {key!r} cannot be set inside a config file; use {setting.flag} or {setting.env}")
            continue
        if setting is None:
            names = [s.name for s in SETTINGS if s.in_file]
            near = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"settings: {', '.join(names)}"
            problems.append(f"{path}: {key!r} is not a setting; {hint}")
            continue
        try:
            values[name] = _from_toml(setting, raw)
        except ValueError as exc:
            problems.append(f"{path}: {key} {exc}")
    return values


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str]) -> Resolved:
    """Defaults, then the environment, then the config file, then the flags (already parsed by argparse)."""
    values = {setting.name: setting.default for setting in SETTINGS}
    sources = dict.fromkeys(values, DEFAULT)
    problems: list[str] = []
    for setting in SETTINGS:
        raw = environ.get(setting.env, "")
        if raw.strip():  # an empty variable is an unset one (`NANOBANANA_SEED= make serve`)
            try:
                values[setting.name] = _from_text(setting, raw)
                sources[setting.name] = f"environment {setting.env}"
            except ValueError as exc:
                problems.append(f"{setting.env}={raw!r}: {setting.name} {exc}")
    config = flags.get("config", values["config"])
    if "config" in flags:
        values["config"], sources["config"] = config, "flag --config"
    if config is not None:
        for name, value in _file_values(config, problems).items():
            values[name], sources[name] = value, f"file {config}"
    for name, value in flags.items():
        values[name] = tuple(value) if BY_NAME[name].repeat else value
        sources[name] = f"flag {BY_NAME[name].flag}"
    if problems:
        raise SettingsError(problems)
    resolved = Resolved(values, sources)
    problems = [problem for rule in RULES if (problem := rule(resolved)) is not None]
    if problems:
        raise SettingsError(problems)
    return resolved


# -- combinations that cannot work (defect: `serve --autojump` without a virtual clock did nothing) ------------

Rule = Callable[[Resolved], str | None]


def needs(name: str, needed: str, advice: str) -> Rule:
    """`name` only acts when `needed` is on."""

    def rule(settings: Resolved) -> str | None:
        if settings.changed(name) and not settings[needed]:
            return f"{settings.given_as(name)} has no effect without {BY_NAME[needed].flag}: {advice}"
        return None

    return rule


def excludes(name: str, other: str, advice: str) -> Rule:
    """`name` has no effect while `other` is on."""

    def rule(settings: Resolved) -> str | None:
        if settings.changed(name) and settings[other]:
            return f"{settings.given_as(name)} has no effect with {settings.given_as(other)}: {advice}"
        return None

    return rule


def quiet_hides_what_was_asked(settings: Resolved) -> str | None:
    if not settings["quiet"]:
        return None
    if settings["log-level"] in ("debug", "info") and settings.changed("log-level"):
        return (f"{settings.given_as('quiet')} hides the access log and {settings.given_as('log-level')} asks for "
                f"{settings['log-level']} lines: drop one of them (--quiet shows warnings and errors only)")
    if settings["control-token"] == RANDOM_TOKEN:
        return (f"{settings.given_as('quiet')} hides the banner, the only place a random control token is shown: "
                "set a token of your own (--control-token TOKEN or NANOBANANA_CONTROL_TOKEN), or drop --quiet")
    return None


def is_loopback(host: str) -> bool:
    name = host.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:
        return False  # an unknown name: binding will fail and say so
    return all(ipaddress.ip_address(str(address).split("%")[0]).is_loopback for address in addresses)


def exposed_control_plane(settings: Resolved) -> str | None:
    if settings["control-token"] is not None or is_loopback(settings["host"]):
        return None
    return (f"{settings.given_as('host')} {settings['host']} would open the control plane (/_sim: reset, faults, "
            "wallets, the journal) to the network without a token: set one with --control-token TOKEN or "
            f"NANOBANANA_CONTROL_TOKEN=TOKEN ('{RANDOM_TOKEN}' makes one at start and prints it), and send "
            "'Authorization: Bearer TOKEN' to /_sim; or bind 127.0.0.1")


SPEED_ADVICE = "use --speed to make the real clock faster instead"
RULES: tuple[Rule, ...] = (
    needs("autojump", "virtual-clock", f"write --virtual-clock --autojump, or drop --autojump ({SPEED_ADVICE})"),
    needs("tick", "virtual-clock", f"write --virtual-clock --tick SECONDS, or drop --tick ({SPEED_ADVICE})"),
    excludes("speed", "virtual-clock", "a virtual clock moves only when advanced (POST /_sim/clock/advance, "
             "--autojump, --tick); drop --speed, or drop --virtual-clock to run the real clock faster"),
    quiet_hides_what_was_asked,
    exposed_control_plane,
)


def flags_from(namespace: Any) -> dict[str, Any]:
    """The settings given on the command line (argparse leaves the others out of the namespace)."""
    return {setting.name: getattr(namespace, setting.dest) for setting in SETTINGS if hasattr(namespace, setting.dest)}
