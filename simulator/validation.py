"""Schema-driven validation: each provider's captured JSON Schemas, read as data.

Schemas live in `schemas/<slug>/**.json` (draft 2020-12, `$id` = BASE_URI + relative path).
OpenAPI-style polymorphism is kept as data through one extra keyword, `discriminator`
(`{"propertyName": ..., "mapping": {value: "$ref"}}`), which picks the sub-schema by the value of
a property and reports an unknown value the way .NET-based APIs do. A violation comes back
provider-neutral (path, rule, value, expected, nearest valid value); each provider renders it in its
own error body with its own message templates.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import extend
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from simulator import field_names
from simulator.resources import schemas_dir

BASE_URI = "https://nanobanana-sim.dev/schemas/"

PathPart = str | int
# Rules about a value that say nothing useful once the value has the wrong type.
VALUE_RULES = frozenset({"enum", "const", "pattern", "format", "minLength", "maxLength", "minimum", "maximum"})
# A body can break its schema in thousands of places (a hostile one, or one written for another provider), and
# a suggestion (the field or value probably meant) costs a fuzzy match: only the first 200 violations in path
# order get one, as ASP.NET Core stops model validation at 200 errors (MvcOptions.MaxModelValidationErrors)
# and no client reads further (Runware reports only the first).
MAX_VIOLATIONS = 200
_PENDING: Any = object()  # a suggestion left for when the violation is known to be reported
# Invalid bodies worded before, per schema set: a client that repeats one bad request (a retry loop, a load test,
# an SDK sending a field the provider refuses) pays for the detailed validator once. Keyed by the body's repr,
# which tells apart what JSON Schema tells apart (1, 1.0 and True; a list and a tuple) and keeps member order;
# only bodies up to MAX_REMEMBERED_BODY characters, the last REMEMBERED_INVALID of them.
REMEMBERED_INVALID = 256
MAX_REMEMBERED_BODY = 16 * 1024
# Rules whose nearest valid value is the limit itself.
LIMIT_RULES = frozenset({
    "const", "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "maxLength", "minLength",
    "maxItems", "minItems",
})


@dataclass(frozen=True)
class Violation:
    """One reason a request is invalid, independent of any provider's wording."""

    path: tuple[PathPart, ...]
    rule: str
    message: str
    value: Any = None
    expected: Any = None
    nearest: Any = None
    schema: str = ""
    doc: str | None = None  # where the rule is documented (the schema's `x-doc` annotation)

    @property
    def field(self) -> str:
        for part in reversed(self.path):
            if isinstance(part, str):
                return part
        return ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": dotted_path(self.path),
            "rule": self.rule,
            "message": self.message,
            "value": _preview(self.value),
            "expected": self.expected,
            "nearest": self.nearest,
            "schema": self.schema,
            "doc": self.doc,
        }


@dataclass
class ValidationReport:
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def __bool__(self) -> bool:
        return self.ok


def dotted_path(path: Sequence[PathPart]) -> str:
    """`("steps", 0, "input", "model")` → `steps[0].input.model` (the .NET model-binding style)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _preview(value: Any, limit: int = 200) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… ({len(value)} characters)"
    if isinstance(value, list) and len(value) > 20:
        return f"[{len(value)} items]"
    if isinstance(value, dict) and len(value) > 20:
        return f"{{{len(value)} members}}"
    return value


def _discriminator(validator: Any, spec: Mapping[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    name = spec["propertyName"]
    if name not in instance:
        return  # `required` on the same schema reports the absence
    value = instance[name]
    target = spec["mapping"].get(value) if isinstance(value, str) else None
    if target is None:
        error = ValidationError(
            f"No derived type found for discriminator value '{value}'",
            validator="discriminator",
            validator_value=sorted(spec["mapping"]),
            instance=value,
        )
        error.path.appendleft(name)
        yield error
        return
    yield from validator.descend(instance, {"$ref": target})


# A `$ref` resolved once per base URI: each lookup joins URIs and walks a JSON pointer, and the detailed path
# meets the same few references on every invalid body. (No schema here uses `$dynamicRef`, the one keyword for
# which the dynamic scope a lookup carries could differ between two lookups of one reference.)
_RESOLVED: dict[tuple[str, str], tuple[Any, Any]] = {}


def _ref(validator: Any, ref: str, instance: Any, schema: Any) -> Iterator[Any]:
    resolver = validator._resolver
    registry = resolver._registry
    key = (resolver._base_uri, ref)
    kept = _RESOLVED.get(key)
    if kept is not None and kept[0] is registry:  # the same schema set (shared schemas sit in several)
        resolved = kept[1]
    else:
        resolved = resolver.lookup(ref)
        if resolved.resolver._registry is registry:  # nothing crawled on the way: the same answer each time
            _RESOLVED[key] = (registry, resolved)
    yield from validator.descend(instance, resolved.contents, resolver=resolved.resolver)


_Validator = extend(Draft202012Validator, {"discriminator": _discriminator, "$ref": _ref})


class SchemaSet:
    """All schemas of one provider (plus the shared ones), addressable by relative name."""

    def __init__(self, slug: str, root: Path | None = None) -> None:
        self.slug = slug
        self.root = root or schemas_dir()
        self._documents: dict[str, dict[str, Any]] = {}
        resources: list[tuple[str, Resource[Any]]] = []
        for folder in (self.root / slug, self.root / "_shared"):
            for path in sorted(folder.rglob("*.json")):
                relative = path.relative_to(self.root).as_posix()
                if "/examples/" in f"/{relative}":
                    continue
                document = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(document, dict) or "$schema" not in document:
                    continue  # data tables (prices, sizes) share the folder but are not schemas
                uri = document.setdefault("$id", BASE_URI + relative)
                # Registered without `$schema`: otherwise a cross-file `$ref` would switch to the stock
                # validator class and silently drop the `discriminator` keyword below that reference.
                contents = {key: value for key, value in document.items() if key != "$schema"}
                resources.append((uri, DRAFT202012.create_resource(contents)))
                self._documents[relative.removeprefix(f"{slug}/").removesuffix(".json")] = document
        self._registry: Registry[Any] = Registry().with_resources(resources)
        self._validators: dict[str, Any] = {}
        self._compiled_registry = jsonschema_rs.Registry(
            [(document["$id"], _lowered(document)) for document in self._documents.values()],
            draft=jsonschema_rs.Draft202012)
        self._compiled: dict[str, Any] = {}
        self._lookups: Lookups = {}
        self._fillers = _Fillers(self._lookups)
        self._filler_of: dict[str, Filler | None] = {}
        self._worded: dict[tuple[str, str], tuple[Violation, ...]] = {}

    def names(self) -> list[str]:
        return sorted(self._documents)

    def document(self, name: str) -> dict[str, Any]:
        return self._documents[name]

    def _validator(self, name: str) -> Any:
        validator = self._validators.get(name)
        if validator is None:
            if name not in self._documents:
                raise KeyError(f"no schema {name!r} for provider {self.slug!r}; have {self.names()}")
            validator = _Validator(self._documents[name], registry=self._registry)
            self._validators[name] = validator
        return validator

    def accepts(self, name: str, instance: Any) -> bool:
        """The compiled validator's verdict: True only when the instance is certainly valid. It decides the happy
        path in microseconds; a False (or a value it cannot take, such as a lone surrogate) leaves the decision,
        and the provider-worded violations, to the detailed validator, which stays the authority."""
        compiled = self._compiled.get(name)
        if compiled is None:
            document = self._documents[name]
            compiled = jsonschema_rs.Draft202012Validator(
                {"$ref": document["$id"]}, registry=self._compiled_registry, validate_formats=False)
            self._compiled[name] = compiled
        try:
            return bool(compiled.is_valid(instance))
        except Exception:  # anything the compiled side cannot read goes the detailed way
            return False

    def validate(self, name: str, instance: Any) -> ValidationReport:
        if name in self._documents and self.accepts(name, instance):
            return ValidationReport()
        shape = repr(instance)
        if len(shape) > MAX_REMEMBERED_BODY:
            return ValidationReport(self._worded_violations(name, instance))
        key = (name, shape)
        worded = self._worded.pop(key, None)  # put back last: the dict's order is the order of use
        if worded is None:
            worded = tuple(self._worded_violations(name, instance))
            if len(self._worded) >= REMEMBERED_INVALID:
                del self._worded[next(iter(self._worded))]
        self._worded[key] = worded
        return ValidationReport(list(worded))

    def _worded_violations(self, name: str, instance: Any) -> list[Violation]:
        """The detailed validator's violations, in path order, each with its suggestion where one is due."""
        errors = self._validator(name).iter_errors(instance)
        violations = [v for error in errors for v in _violations(error, name)]
        violations.sort(key=lambda v: (dotted_path(v.path), v.rule))
        # Suggestions (the costly part) for the first MAX_VIOLATIONS in path order: those a client reads.
        kept = _dedupe(violations)
        return [_suggested(v) if n < MAX_VIOLATIONS else replace(v, nearest=None) if v.nearest is _PENDING else v
                for n, v in enumerate(kept)]

    def errors(self, name: str, instance: Any) -> list[ValidationError]:
        """jsonschema's own errors, alternatives and all (the drift report picks the closest alternative)."""
        return list(self._validator(name).iter_errors(instance))

    def is_valid(self, name: str, instance: Any) -> bool:
        return (name in self._documents and self.accepts(name, instance)) or bool(
            self._validator(name).is_valid(instance))

    def resolver(self, name: str) -> Any:
        """A `referencing` resolver based at schema `name`, for modules that walk a schema next to an instance."""
        return self._registry.resolver(base_uri=self._documents[name]["$id"])

    def with_defaults(self, name: str, instance: Any) -> Any:
        """A copy of a valid instance with every schema `default` filled in where a value is absent."""
        if name in self._filler_of:
            filler = self._filler_of[name]
        else:
            document = self._documents[name]
            resolver = self._registry.resolver(base_uri=document["$id"])
            filler = self._filler_of[name] = self._fillers.of(document, resolver)
        return instance if filler is None else filler(instance)


def _lowered(schema: Any) -> Any:
    """A copy of the schema in standard JSON Schema, for the compiled validator: each `discriminator` becomes
    the `if`/`then` pairs that decide the same (a listed value → its mapped schema, any other → invalid), and
    `$schema` goes (the registry fixes the draft)."""
    if isinstance(schema, list):
        return [_lowered(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _lowered(value) for key, value in schema.items() if key not in ("discriminator", "$schema")}
    spec = schema.get("discriminator")
    if isinstance(spec, dict):
        name, mapping = spec["propertyName"], spec["mapping"]
        present: dict[str, Any] = {"type": "object", "required": [name]}
        rules: list[Any] = [{"if": present, "then": {"properties": {name: {"enum": sorted(mapping)}}}}]
        rules += [{"if": {**present, "properties": {name: {"const": value}}}, "then": {"$ref": target}}
                  for value, target in mapping.items()]
        out["allOf"] = [*out.get("allOf", []), *rules]
    return out


Lookups = dict[tuple[int, str], Any]
Filler = Callable[[Any], Any]


def _resolved(schema: dict[str, Any], ref: str, resolver: Any, lookups: Lookups) -> Any:
    """`resolver.lookup(ref)`, remembered per schema object (each lives in one loaded document, so its base URI
    never changes): resolving costs more than the filling, and the same references are met on every request."""
    key = (id(schema), ref)
    found = lookups.get(key)
    if found is None:
        found = lookups[key] = resolver.lookup(ref)
    return found


class _Fillers:
    """Each schema's default filling compiled once into a function: what the schema says to do (follow `$ref`,
    `allOf` and the discriminator, fill absent properties, descend into present ones and into items) is worked
    out when the schema is first met, so a request only runs the steps that apply to it, and a subschema with
    nothing to fill (a string, a number) is not visited at all. The order of the steps, and the copies made (a
    fresh dict wherever properties are listed, a fresh list wherever items are), are those of the walk this
    replaced (`tests/test_default_filling.py` holds them to it)."""

    def __init__(self, lookups: Lookups) -> None:
        self._lookups = lookups
        self._made: dict[int, Filler | None] = {}
        self._keep: list[Any] = []  # the schemas whose ids key `_made`, alive for as long as the entries

    def of(self, schema: Any, resolver: Any) -> Filler | None:
        """The filler of `schema` (None: nothing to do, the value stays as it is)."""
        if not isinstance(schema, dict):
            return None
        key = id(schema)
        if key in self._made:
            made = self._made[key]
            # Met again while being compiled (a recursive schema): defer to the finished filler at call time.
            return made if made is not _COMPILING else lambda value: self._deferred(key, value)
        self._made[key] = _COMPILING
        self._keep.append(schema)
        made = self._compile(schema, resolver)
        self._made[key] = made
        return made

    def _deferred(self, key: int, value: Any) -> Any:
        filler = self._made[key]
        return value if filler is None else filler(value)

    def _compile(self, schema: dict[str, Any], resolver: Any) -> Filler | None:
        steps: list[Filler] = []
        if "$ref" in schema:
            resolved = _resolved(schema, schema["$ref"], resolver, self._lookups)
            if (target := self.of(resolved.contents, resolved.resolver)) is not None:
                steps.append(target)
        for part in schema.get("allOf", []):
            if (filler := self.of(part, resolver)) is not None:
                steps.append(filler)
        discriminator = schema.get("discriminator")
        if discriminator:
            steps.append(self._by_discriminator(schema, discriminator, resolver))
        properties = schema.get("properties")
        if isinstance(properties, dict):
            steps.append(self._properties(properties, resolver))
        items = schema.get("items")
        if isinstance(items, dict):
            each = self.of(items, resolver)
            steps.append((lambda value: [each(item) for item in value] if isinstance(value, list) else value)
                         if each is not None else (lambda value: list(value) if isinstance(value, list) else value))
        if not steps:
            return None
        if len(steps) == 1:
            return steps[0]

        def in_turn(value: Any) -> Any:
            for step in steps:
                value = step(value)
            return value

        return in_turn

    def _by_discriminator(self, schema: dict[str, Any], spec: dict[str, Any], resolver: Any) -> Filler:
        name, mapping = spec["propertyName"], spec["mapping"]
        chosen: dict[str, Filler | None] = {}

        def fill(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            target = mapping.get(value.get(name))
            if not isinstance(target, str):
                return value
            if target not in chosen:
                resolved = _resolved(schema, target, resolver, self._lookups)
                chosen[target] = self.of(resolved.contents, resolved.resolver)
            filler = chosen[target]
            return value if filler is None else filler(value)

        return fill

    def _properties(self, properties: dict[str, Any], resolver: Any) -> Filler:
        present = [(key, filler) for key, sub in properties.items() if (filler := self.of(sub, resolver)) is not None]
        defaults = [(key, sub["default"]) for key, sub in properties.items()
                    if isinstance(sub, dict) and "default" in sub]

        def fill(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            filled = dict(value)
            for key, filler in present:
                if key in filled:
                    filled[key] = filler(filled[key])
            for key, default in defaults:
                if key not in value:  # appended in the schema's order, after the members the body has
                    filled[key] = _fresh(default)
            return filled

        return fill


_COMPILING: Any = object()


def _fresh(default: Any) -> Any:
    """A schema default as a request gets it: a string, number, boolean or null shared as it is, a list or object
    the caller's own copy."""
    if isinstance(default, list | dict):
        return json_copy(default)
    return default


def json_copy(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists and immutable leaves): `copy.deepcopy` without its memo and
    dispatch, which cost several times the copy on the small defaults every request gets."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


@cache
def schema_set(slug: str) -> SchemaSet:
    return SchemaSet(slug)


def _dedupe(violations: Iterable[Violation]) -> list[Violation]:
    """One violation per path and rule; a wrong type hides the value rules it makes meaningless."""
    violations = list(violations)
    mistyped = {v.path for v in violations if v.rule == "type"}
    seen: set[tuple[Any, ...]] = set()
    out = []
    for violation in violations:
        if violation.path in mistyped and violation.rule in VALUE_RULES:
            continue
        key = (violation.path, violation.rule)
        if key not in seen:
            seen.add(key)
            out.append(violation)
    return out


def _suggested(violation: Violation) -> Violation:
    """The violation with its nearest valid value, where that was left for later (`_PENDING`)."""
    if violation.nearest is not _PENDING:
        return violation
    if violation.rule == "additionalProperties":
        nearest = field_names.meant(str(violation.path[-1]), violation.expected)
    else:
        nearest = _nearest(violation.value, violation.expected)
    return replace(violation, nearest=nearest)


def _nearest(value: Any, candidates: Iterable[Any]) -> Any:
    """The candidate nearest to `value` in the value's own terms: an aspect ratio by its ratio, a pixel size
    by its sides, a number (or a tier such as `2K`) by its magnitude, anything else by its spelling."""
    options = list(candidates)
    if not options:
        return None
    point = _measure(value)
    if point is not None:
        kind, where = point
        scored = [
            (math.dist(where, other[1]), index)
            for index, option in enumerate(options)
            if (other := _measure(option)) is not None and other[0] == kind
        ]
        if scored:
            return options[min(scored)[1]]  # ties go to the candidate listed first
    return _nearest_spelling(value, options)


def _nearest_spelling(value: Any, options: list[Any]) -> Any:
    text = str(value)
    for option in options:
        if str(option).lower() == text.lower():
            return option
    match = difflib.get_close_matches(text, [str(o) for o in options], n=1, cutoff=0.0)
    return next((o for o in options if str(o) == match[0]), None) if match else None


_RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*")
_PIXELS = re.compile(r"\s*(\d+)\s*[x\u00d7*]\s*(\d+)\s*", re.IGNORECASE)
_TIER = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", re.IGNORECASE)  # 0.5K, 1K, 2K, 4K


def _measure(value: Any) -> tuple[str, tuple[float, ...]] | None:
    """What kind of quantity a value spells, and where it lies; only values of one kind are compared.

    Ratios and sizes are placed in log space, so 2:1 and 1:2 are as far from 1:1, and a size is near
    another when both of its sides are; a tier (`2K`) is compared with tiers of the same unit only."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return "number", (float(value),)
    if not isinstance(value, str):
        return None
    if (ratio := _RATIO.fullmatch(value)) and float(ratio[1]) and float(ratio[2]):
        return "ratio", (math.log(float(ratio[1]) / float(ratio[2])),)
    if (size := _PIXELS.fullmatch(value)) and int(size[1]) and int(size[2]):
        return "pixels", (math.log(int(size[1])), math.log(int(size[2])))
    if (tier := _TIER.fullmatch(value)) and float(tier[1]):
        return f"tier {tier[2].upper()}", (math.log(float(tier[1])),)
    return None


def _violations(error: ValidationError, schema_name: str) -> Iterator[Violation]:
    path = tuple(error.absolute_path)
    rule = str(error.validator)
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    doc = _doc(error)
    if rule == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties", {}))
        for name in sorted(set(instance) - known):
            yield Violation(
                (*path, name), rule, f"'{name}' is not a valid property", instance[name],
                sorted(known), _PENDING, schema_name, doc,
            )
        return
    if rule == "required" and isinstance(instance, dict):
        for name in error.validator_value:
            if name not in instance:
                yield Violation((*path, name), rule, f"'{name}' is required", None, name, None, schema_name, doc)
        return
    expected = error.validator_value
    nearest: Any = None
    if rule in ("enum", "discriminator"):
        nearest = _PENDING
    elif rule in LIMIT_RULES:
        nearest = expected
    yield Violation(path, rule, _brief(error.message), instance, expected, nearest, schema_name, doc)


# jsonschema words a message with the whole offending value (`[1, 1, …] is not of type 'string'`): a 40 MB value
# must not become a 40 MB error message, in the answer and in the journal.
MAX_MESSAGE = 1000


def _brief(message: str) -> str:
    if len(message) <= MAX_MESSAGE:
        return message
    return f"{message[:MAX_MESSAGE // 2]} … ({len(message) - MAX_MESSAGE} characters left out) … " \
           f"{message[-MAX_MESSAGE // 2:]}"


def _doc(error: ValidationError) -> str | None:
    """The nearest `x-doc` annotation: on the failing subschema, else on the schemas that led to it."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if isinstance(schema.get("x-doc"), str):
        return str(schema["x-doc"])
    parent = error.parent
    while parent is not None:
        if isinstance(parent.schema, dict) and isinstance(parent.schema.get("x-doc"), str):
            return str(parent.schema["x-doc"])
        parent = parent.parent
    return None


def render_message(templates: Mapping[str, str], violation: Violation) -> str:
    """Fill a provider's message template for this violation's rule (or its default)."""
    template = templates.get(violation.rule) or templates.get("default") or "{message}"
    value = violation.value
    expected = violation.expected
    values = {
        "field": violation.field,
        "path": dotted_path(violation.path),
        "value": value if not isinstance(value, (dict, list)) else json.dumps(value)[:200],
        "expected": ", ".join(map(str, expected)) if isinstance(expected, list) else expected,
        "count": len(value) if isinstance(value, (str, list, dict)) else value,
        "nearest": violation.nearest,
        "message": violation.message,
    }
    return template.format_map(values)
