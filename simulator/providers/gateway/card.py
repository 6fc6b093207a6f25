"""The `gateway` and `models` sections of a provider.json, read once and checked at start-up.

Everything that differs between the providers of the task-unified gateway family (routes, field
names, status words, wire templates, error table, failure codes, fault kinds, per-model tables) is
data here, so a wrong key fails when the simulator starts, not on the first request that needs it.

Two tables serve failure rehearsal (simulator/faults):
- `faults` (top level of provider.json): each error kind a fault rule can force names the error
  condition (`gateway.errors`) that renders it, so status, code, type and wording live once, in the
  error table. An entry may add `message` (when the condition's wording needs request details a
  forced error does not have), `code`, `headers`, and `byOperation` entries that REPLACE it on that
  route (e.g. `forbidden` is a 403 model refusal on create and a 403 permission refusal on reads).
- `gateway.failures` (failed-task `error` by provider-neutral failure kind: blocked, image, error,
  timeout, default) and `gateway.failureCodes` (the message of every other documented business code,
  so a `fail` rule's `code` renders with its documented wording).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulator.engine import Phase
from simulator.providers.gateway.templates import Template

# The values the gateway computes for each body; a template may use any subset of them.
BODY_VALUES: dict[str, frozenset[str]] = {
    "create": frozenset({
        "id", "created", "model", "status", "progress", "results", "error", "can_cancel", "estimated_time",
        "credits_reserved",
    }),
    "result": frozenset({"url"}),
    "taskError": frozenset({"code", "message"}),
    "credits": frozenset({"remaining", "used"}),
    "error": frozenset({"code", "message", "type", "param"}),
}
BODY_VALUES["detail"] = BODY_VALUES["create"]

# Options the shared code reads; each provider.json declares them with its own defaults.
REQUIRED_OPTIONS = frozenset({
    "url_ttl_seconds", "default_output_format", "unknown_fields", "invalid_image_handling", "match_ratio_fallback",
    "results_lag_seconds", "refund_failed_tasks", "denied_models",
})
CALLBACK_OPTIONS = frozenset({"callback_retry_delays", "callback_timeout_seconds", "allow_http_callbacks_to_loopback"})
# Error conditions the shared code always raises; `bad_content_type` and `unsupported_options` are needed
# only by a card that enforces the Content-Type or lists unsupported options, and `invalid_task_id` and
# `task_forbidden` are optional (without them a malformed or foreign task ID is simply not found).
REQUIRED_ERRORS = frozenset({
    "unauthorized", "missing_auth", "invalid_json", "invalid_request", "model_access_denied", "insufficient_credits",
    "task_not_found", "route_not_found", "internal",
})
FAULT_ENTRY_KEYS = frozenset({"condition", "message", "code", "headers", "byOperation"})
# Failure kinds made by fault rules (simulator/faults/tasks.py), whose `code` is the rule's own choice and is
# sent as written; the codes of other kinds (a moderation pattern, "forced") are internal and never shown.
RULE_FAILURE_KINDS = frozenset({"error", "timeout"})


@dataclass(frozen=True)
class Route:
    path: str
    operation: str


@dataclass(frozen=True)
class Fields:
    """The request's field names: aspect ratio, resolution tier, input images, output format, callback."""

    ratio: str
    tier: str
    images: str
    format: str | None
    callback: str | None


@dataclass(frozen=True)
class TaskIdFormat:
    prefix: str
    length: int
    alphabet: str


@dataclass(frozen=True)
class ModelCard:
    name: str
    size_family: str
    seconds: Mapping[str, tuple[float, float]]
    credits: Mapping[str, int | float]  # as written, so 5 stays 5 on the wire
    estimated_time: int
    max_image_bytes: int
    unsupported_options: tuple[str, ...]


@dataclass(frozen=True)
class CallbackSpec:
    body: str
    phases: frozenset[Phase]
    max_length: int


@dataclass(frozen=True)
class GatewayCard:
    routes: Mapping[str, Route]
    files_path: str
    require_json_content_type: bool
    fields: Fields
    match_input_ratios: frozenset[str]
    tier_aliases: Mapping[str, str]
    task_id: TaskIdFormat
    images_per_task: int
    statuses: Mapping[Phase, str]
    failed_progress: int
    lagging_progress: int
    bodies: Mapping[str, Template]
    callback: CallbackSpec | None
    errors: Mapping[str, Mapping[str, Any]]
    status_errors: Mapping[str, str]  # "429" or a class like "4xx" → error condition
    root_name: str
    separator: str
    messages: Mapping[str, str]
    failures: Mapping[str, Mapping[str, str]]
    failure_messages: Mapping[str, str]  # every documented business code → its message template
    faults: Mapping[str, Mapping[str, Any]]
    models: Mapping[str, ModelCard]

    def fault_entry(self, kind: str, operation: str | None) -> Mapping[str, Any] | None:
        """How a forced error of `kind` renders on `operation` (None: the kind is not in the provider's table)."""
        entry = self.faults.get(kind)
        if entry is None:
            return None
        return entry.get("byOperation", {}).get(operation or "") or entry

    @classmethod
    def load(cls, slug: str, data: Mapping[str, Any]) -> GatewayCard:
        g = data["gateway"]
        routes = {name: Route(spec["path"], spec.get("operation", "")) for name, spec in g["routes"].items()}
        files = routes.pop("files")
        bodies = {name: Template.from_data(spec, f"{slug}.bodies.{name}") for name, spec in g["bodies"].items()}
        for name, allowed in BODY_VALUES.items():
            unknown = bodies[name].names() - allowed
            if unknown:
                raise ValueError(f"{slug}: body template {name!r} asks for unknown values {sorted(unknown)}")
        callback = None
        if g["fields"].get("callback"):
            spec = g["callback"]
            callback = CallbackSpec(spec["body"], frozenset(Phase(p) for p in spec["phases"]), int(spec["maxLength"]))
        options = set(data.get("options", {}))
        missing = (REQUIRED_OPTIONS | (CALLBACK_OPTIONS if callback else frozenset())) - options
        if missing:
            raise ValueError(f"{slug}: provider.json lacks the options {sorted(missing)}")
        needed = set(REQUIRED_ERRORS)
        if g["requireJsonContentType"]:
            needed.add("bad_content_type")
        if any(card.get("unsupportedOptions") for card in data["models"].values()):
            needed.add("unsupported_options")
        lacking = needed - set(g["errors"])
        if lacking:
            raise ValueError(f"{slug}: provider.json lacks the error conditions {sorted(lacking)}")
        unknown_conditions = set(g["statusErrors"].values()) - set(g["errors"])
        if unknown_conditions:
            raise ValueError(f"{slug}: statusErrors names unknown error conditions {sorted(unknown_conditions)}")
        operations = {route.operation for route in routes.values()}
        faults = {kind: entry for kind, entry in data.get("faults", {}).items() if not kind.startswith("$")}
        for kind, entry in faults.items():
            _check_fault(slug, kind, entry, set(g["errors"]), operations)
        return cls(
            routes=routes,
            files_path=files.path,
            require_json_content_type=bool(g["requireJsonContentType"]),
            fields=Fields(**g["fields"]),
            match_input_ratios=frozenset(g["matchInputRatios"]),
            tier_aliases=dict(g["tierAliases"]),
            task_id=TaskIdFormat(**g["taskId"]),
            images_per_task=int(g["imagesPerTask"]),
            statuses={Phase(phase): word for phase, word in g["statuses"].items()},
            failed_progress=int(g["progress"]["failed"]),
            lagging_progress=int(g["progress"]["lagging"]),
            bodies=bodies,
            callback=callback,
            errors=g["errors"],
            status_errors=dict(g["statusErrors"]),
            root_name=g["rootName"],
            separator=g["violationSeparator"],
            messages=g["messages"],
            failures=g["failures"],
            failure_messages=_failure_messages(slug, g["failures"], g.get("failureCodes", {})),
            faults=faults,
            models={name: _model(name, card) for name, card in data["models"].items()},
        )


def _check_fault(
    slug: str, kind: str, entry: Mapping[str, Any], conditions: set[str], operations: set[str], nested: bool = False
) -> None:
    where = f"{slug}: faults.{kind}"
    allowed = FAULT_ENTRY_KEYS - ({"byOperation"} if nested else set())
    if set(entry) - allowed:
        raise ValueError(f"{where} has unknown keys {sorted(set(entry) - allowed)}; use {sorted(allowed)}")
    if entry.get("condition") not in conditions:
        raise ValueError(f"{where} must name an error condition of gateway.errors, not {entry.get('condition')!r}")
    for operation, override in entry.get("byOperation", {}).items():
        if operation not in operations:
            raise ValueError(f"{where}.byOperation names an unknown operation {operation!r}")
        _check_fault(slug, f"{kind}.byOperation.{operation}", override, conditions, operations, nested=True)


def _failure_messages(
    slug: str, failures: Mapping[str, Mapping[str, str]], codes: Mapping[str, str]
) -> dict[str, str]:
    """Business code → message: the kinds' own wording first, then the codes only a fault rule selects."""
    messages = {spec["code"]: spec["message"] for spec in failures.values() if "message" in spec}
    twice = set(messages) & set(codes)
    if twice:
        raise ValueError(f"{slug}: failureCodes repeats the messages of failures {sorted(twice)}")
    messages.update(codes)
    if "default" not in failures:
        raise ValueError(f"{slug}: gateway.failures needs a default entry")
    silent = [kind for kind, spec in failures.items() if spec["code"] not in messages]
    if silent:
        raise ValueError(f"{slug}: gateway.failures {sorted(silent)} use codes without a message")
    return messages


def _model(name: str, card: Mapping[str, Any]) -> ModelCard:
    return ModelCard(
        name=name,
        size_family=card["sizeFamily"],
        seconds={tier: (float(low), float(high)) for tier, (low, high) in card["seconds"].items()},
        credits=dict(card["credits"]),
        estimated_time=int(card["estimatedTime"]),
        max_image_bytes=int(card["maxImageBytes"]),
        unsupported_options=tuple(card.get("unsupportedOptions", ())),
    )
