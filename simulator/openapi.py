"""Each provider's contract as one OpenAPI 3.1 document, built from the same data the simulator runs on.

Methods and paths come from the provider's live routes, so the document cannot list an endpoint the
simulator does not serve; what each operation takes and answers comes from provider.json
(`operations`, `commonResponses`, `documentedRequest`); the bodies are the provider's JSON Schemas,
embedded under `components.schemas` with every `$ref` rewritten to point inside the document. The
result feeds contract tools (Prism, Schemathesis, openapi-generator) without the simulator.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import simulator
from simulator.examples import example_files, load_example
from simulator.operations import Operation, ResponseSpec, operations
from simulator.options import provider_data
from simulator.validation import SchemaSet, schema_set

if TYPE_CHECKING:
    from simulator.pipeline import Endpoint
    from simulator.providers.base import Provider

OPENAPI_VERSION = "3.1.0"
# Each exported operation names its entry in the operations table (an operation may have several paths).
OPERATION_KEY = "x-nanobanana-operation"
COMPONENTS = "#/components/schemas/"
JSON = "application/json"
# The simulator's own listen address when `serve` runs with its defaults.
DEFAULT_SIMULATOR = "http://127.0.0.1:8000"
# OpenAPI 3.1 §4.8.12.1: header parameters with these names SHALL be ignored, so they are not listed.
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
# Wrapper files keep a documented body exactly as published next to notes about it (qingbo, the
# invalid/ folders); only `body` goes on the wire.
WRAPPER_KEYS = frozenset({"description", "doc", "contract", "headers", "body", "expect", "schema"})

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = (
    "items", "additionalItems", "additionalProperties", "not", "if", "then", "else", "contains",
    "propertyNames", "unevaluatedItems", "unevaluatedProperties", "contentSchema",
)
_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def openapi_document(slug: str, *, server_url: str | None = None, provider: Provider | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `slug`'s simulated API.

    `server_url` replaces the default servers (the real host, then `nanobanana-sim serve`'s default
    address). Given a running `provider`, its routes and current option values are used (a `{option}`
    request schema follows what that simulator validates now); otherwise the option defaults.
    """
    if provider is None:
        from simulator.sim import Simulator  # here, not at the top: simulator.sim imports the control plane

        provider = Simulator(providers=[slug]).provider(slug)
    values = {name: spec["value"] for name, spec in provider.options.describe().items()}
    data = provider_data(slug)
    schemas = schema_set(slug)
    table = operations(slug)
    names = _component_names(schemas)
    auth_header = str(data.get("apiKeyHeader") or "authorization").lower()
    scheme = "apiKey" if data.get("apiKeyHeader") else "bearer"
    examples = _examples(slug, schemas)

    paths: dict[str, dict[str, Any]] = {}
    roots: list[str] = []
    for path, method, name, operation_id in _exported_routes(provider.routes()):
        spec = table.get(name)
        if spec is not None and spec.enabled_by and not values.get(spec.enabled_by):
            continue  # switched off under these options: the simulator answers 404 there
        request = spec.request_schema(values) if spec is not None else None
        typed = spec.parameters if spec is not None else {}
        entry: dict[str, Any] = {"operationId": operation_id, "summary": spec.summary if spec else name,
                                 OPERATION_KEY: name}
        parameters = [
            *({"name": param, "in": "path", "required": True,
               "schema": dict(typed.get("path", {}).get(param, {"type": "string"}))}
              for param in _PATH_PARAM.findall(path)),
            *({"name": param, "in": "query", "required": False,
               "schema": dict(typed.get("query", {}).get(param, {"type": "string"}))}
              for param in _documented(data, "query", name)),
            *({"name": _header_case(header), "in": "header", "required": False, "schema": {"type": "string"}}
              for header in map(str.lower, _documented(data, "headers", name))
              if header not in IGNORED_HEADERS | {auth_header}),
        ]
        if parameters:
            entry["parameters"] = parameters
        if request is not None:
            roots.append(request)
            content: dict[str, Any] = {"schema": {"$ref": COMPONENTS + names[request]}}
            if request in examples:  # a copy each: operations sharing a schema must not share mutable objects
                content["examples"] = copy.deepcopy(examples[request])
            entry["requestBody"] = {"required": True, "content": {spec.request_media if spec else JSON: content}}
        entry["responses"] = _responses(spec, schemas, names, head=method == "head")
        roots.extend(schema for response in (spec.responses.values() if spec else ()) for schema in response.schemas)
        if spec is not None and spec.auth == "none":
            entry["security"] = []
        elif spec is not None and spec.auth == "optional":
            entry["security"] = [{scheme: []}, {}]
        paths.setdefault(path, {})[method] = entry

    hosts = list(data.get("hosts", []))
    if server_url is not None:
        servers = [{"url": server_url, "description": "This nanobanana-sim"}]
    else:
        servers = [
            *([{"url": f"https://{hosts[0]}", "description": f"{slug} itself"}] if hosts else []),
            {"url": f"{DEFAULT_SIMULATOR}/{slug}", "description": "nanobanana-sim serve, default address"},
        ]
    security_scheme = (
        {"type": "apiKey", "in": "header", "name": data["apiKeyHeader"]} if scheme == "apiKey"
        else {"type": "http", "scheme": "bearer"}
    )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"{slug} as simulated by nanobanana-sim",
            "version": simulator.__version__,
            "description": (
                f"The {slug} API as nanobanana-sim simulates it, generated from the simulator's data "
                f"(schemas/{slug}/request, schemas/{slug}/response and the operations table in "
                f"schemas/{slug}/provider.json). Why each choice was made, and where the real provider "
                f"is ambiguous: schemas/{slug}/README.md in the nanobanana-sim sources."
            ),
        },
        "servers": servers,
        "security": [{scheme: []}],
        "paths": paths,
        "components": {
            "securitySchemes": {scheme: security_scheme},
            "schemas": _components(schemas, names, roots),
        },
    }


# -- routes and parameters ----------------------------------------------------------------------------


def _exported_routes(routes: list[Endpoint]) -> list[tuple[str, str, str, str]]:
    """(OpenAPI path, lower-case method, operation name, operationId) per exported operation, in route order.

    Every GET endpoint answers HEAD too, so HEAD is exported only for a HEAD-only endpoint. A path
    registered with and without a trailing slash (runware's `/v1` and `/v1/`) is exported once. An operation
    served at several paths (Google's Gemini API and Vertex AI forms) is exported at each, its later paths with
    an operationId of their own; every entry names its operation in `x-nanobanana-operation`. An endpoint a
    query parameter selects shares its path and method with another, which OpenAPI cannot say: it is left out
    (Google's upload session URL, which the upload's start hands out).
    """
    found: dict[tuple[str, str, str], tuple[str, str, str]] = {}
    for route in described_routes(routes):
        name = route.operation
        path = _PATH_PARAM.sub(r"{\1}", route.path)
        methods = set(route.methods or ())
        for method in sorted(methods - {"HEAD"}) or ["HEAD"]:
            key = (name, method, path.rstrip("/") or "/")
            if key not in found or len(path) < len(found[key][0]):
                found[key] = (path, method.lower(), name)
    used: set[str] = set()
    listed = []
    for path, method, name in found.values():
        operation_id = name if name not in used else f"{name}_{method}"
        suffix = 2
        while operation_id in used:
            operation_id, suffix = f"{name}_{method}_{suffix}", suffix + 1
        used.add(operation_id)
        listed.append((path, method, name, operation_id))
    return listed


def described_routes(routes: list[Endpoint]) -> list[Endpoint]:
    """The endpoints an OpenAPI document can describe: not the fallback, not one a query parameter selects."""
    return [route for route in routes if route.operation != "UnknownRoute" and route.query is None]


def _documented(data: Mapping[str, Any], kind: str, operation: str) -> list[str]:
    table = data.get("documentedRequest", {}).get(kind, {})
    return [str(name) for name in dict.fromkeys([*table.get("*", []), *table.get(operation, [])])]


def _header_case(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


# -- responses ----------------------------------------------------------------------------------------


def _description(status: str) -> str:
    if status == "default":
        return "Any other status"
    if status.endswith("XX"):
        return {"1": "Informational", "2": "Success", "3": "Redirection", "4": "Client error",
                "5": "Server error"}.get(status[0], f"Status {status}")
    try:
        return HTTPStatus(int(status)).phrase
    except ValueError:
        return f"Status {status}"


def _responses(spec: Operation | None, schemas: SchemaSet, names: Mapping[str, str], *, head: bool) -> dict[str, Any]:
    if spec is None or not spec.responses:
        return {"default": {"description": "Not described in the provider's operations table"}}
    result: dict[str, Any] = {}
    for status, response in spec.responses.items():
        titles = [str(schemas.document(name).get("title", name)) for name in response.schemas]
        description = _description(status) + (f": {' or '.join(titles)}" if titles else "")
        entry: dict[str, Any] = {"description": description}
        content = _content(response, schemas, names)
        if content and not head:  # a HEAD answer never carries the body its GET would
            entry["content"] = content
        result[status] = entry
    return result


def _content(response: ResponseSpec, schemas: SchemaSet, names: Mapping[str, str]) -> dict[str, Any]:
    by_media: dict[str, list[dict[str, str]]] = {}
    for name in response.schemas:
        media = str(schemas.document(name).get("x-media-type", JSON))
        by_media.setdefault(media, []).append({"$ref": COMPONENTS + names[name]})
    content: dict[str, Any] = {
        media: {"schema": refs[0] if len(refs) == 1 else {"anyOf": refs}} for media, refs in by_media.items()
    }
    for media in response.media:
        content[media] = {}
    return content


# -- request examples ---------------------------------------------------------------------------------


def _is_wrapper(example: Any) -> bool:
    return isinstance(example, dict) and "body" in example and set(example) <= WRAPPER_KEYS


def wire_body(example: Any, schema: Mapping[str, Any]) -> Any:
    """A shipped example as it goes on the wire for a request schema.

    A wrapper file contributes its `body`; a lone object for an array schema is sent as a one-item array
    (runware's examples hold single tasks, and POST /v1 always takes an array).
    """
    if _is_wrapper(example):
        example = example["body"]
    if schema.get("type") == "array" and not isinstance(example, list):
        example = [example]
    return example


def _examples(slug: str, schemas: SchemaSet) -> dict[str, dict[str, dict[str, Any]]]:
    """The shipped request examples per request schema they are valid against: {schema: {file stem: Example}}."""
    requests = [name for name in schemas.names() if name.startswith("request/")]
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for path in example_files(slug, "requests"):
        loaded = load_example(path)
        summary = loaded.get("description") if _is_wrapper(loaded) else None
        for name in requests:
            body = wire_body(loaded, schemas.document(name))
            if schemas.validate(name, body).violations:
                continue
            example: dict[str, Any] = {"value": body}
            if isinstance(summary, str):
                example["summary"] = summary
            result.setdefault(name, {})[path.stem] = example
    return {name: dict(sorted(attached.items())) for name, attached in result.items()}


# -- components ---------------------------------------------------------------------------------------


def _component_names(schemas: SchemaSet) -> dict[str, str]:
    """`request/task-en` → `TaskEnRequest`: the schema's own name, then its folder."""
    names: dict[str, str] = {}
    for name in schemas.names():
        folder, _, stem = name.rpartition("/")
        readable = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", f"{stem} {folder}") if part)
        if readable in names.values():
            raise ValueError(f"{schemas.slug}: schema {name!r} would share the component name {readable!r}")
        names[name] = readable
    return names


def _subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            yield from (sub for sub in schema[key].values() if isinstance(sub, dict))
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            yield from (sub for sub in schema[key] if isinstance(sub, dict))
    for key in _SCHEMA_ONE:
        value = schema.get(key)
        if isinstance(value, dict):
            yield value
        elif isinstance(value, list):
            yield from (sub for sub in value if isinstance(sub, dict))


def _walk(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every schema object in `schema`, itself first; values of `const`, `enum`, `examples` are not entered."""
    yield schema
    for sub in _subschemas(schema):
        yield from _walk(sub)


def _refs(node: dict[str, Any]) -> Iterator[str]:
    if isinstance(node.get("$ref"), str):
        yield node["$ref"]
    discriminator = node.get("discriminator")
    if isinstance(discriminator, dict):
        yield from (ref for ref in discriminator.get("mapping", {}).values() if isinstance(ref, str))


def _rewrite(ref: str, base: str, by_uri: Mapping[str, str], names: Mapping[str, str]) -> tuple[str, str]:
    """(schema name, in-document `$ref`) for a `$ref` found in the schema whose `$id` is `base`."""
    uri, _, fragment = urljoin(base, ref).partition("#")
    if uri not in by_uri:
        raise ValueError(f"$ref {ref!r} in {base} leaves the provider's schemas")
    if fragment and not fragment.startswith("/"):
        raise ValueError(f"$ref {ref!r} in {base}: only JSON-pointer fragments can be rewritten")
    name = by_uri[uri]
    return name, COMPONENTS + names[name] + fragment


def _components(schemas: SchemaSet, names: Mapping[str, str], roots: list[str]) -> dict[str, Any]:
    """Every schema reachable from `roots`, self-contained: no `$id`, every reference inside the document."""
    by_uri = {schemas.document(name)["$id"]: name for name in schemas.names()}
    pending = list(dict.fromkeys(roots))
    embedded: dict[str, dict[str, Any]] = {}
    while pending:
        name = pending.pop()
        if names[name] in embedded:
            continue
        document = copy.deepcopy(schemas.document(name))
        base = document.pop("$id")
        document.pop("$schema", None)
        for node in _walk(document):
            if node is not document and "$id" in node:
                raise ValueError(f"{name}: a nested $id would change how its references resolve")
            if isinstance(node.get("$ref"), str):
                target, node["$ref"] = _rewrite(node["$ref"], base, by_uri, names)
                pending.append(target)
            mapping = node.get("discriminator", {}).get("mapping", {}) if isinstance(node.get("discriminator"), dict) \
                else {}
            for value, ref in mapping.items():
                target, mapping[value] = _rewrite(ref, base, by_uri, names)
                pending.append(target)
        embedded[names[name]] = document
    hoisted = _hoisted(embedded)
    components = {name: hoisted[name] for name in sorted(_reachable(hoisted, [names[root] for root in roots]))}
    lookup = _lookup({"components": {"schemas": components}})
    for document in components.values():
        for node in list(_walk(document)):
            _polymorphism(node, lookup)
    return components


def _hoisted(components: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each schema's `$defs` as components of their own (`Workflow_step`), every reference rewritten to match.

    JSON Schema lets a `$ref` point into a schema's own `$defs`; mock servers that resolve references the
    OpenAPI way do not cope (Prism 5 overflows its stack on Civitai and answers empty bodies on qingbo), so
    the document keeps every schema directly under `components.schemas`. What validates does not change.
    """
    result = dict(components)
    moved: dict[str, str] = {}  # old pointer prefix → new one
    pending = list(components)
    while pending:
        name = pending.pop()
        definitions = result[name].pop("$defs", None)
        if not isinstance(definitions, dict):
            continue
        for key, schema in definitions.items():
            new_name = f"{name}_{re.sub(r'[^A-Za-z0-9.-]+', '_', key)}"
            if new_name in result:
                raise ValueError(f"hoisting {name}'s $defs/{key} would overwrite the component {new_name!r}")
            result[new_name] = schema
            moved[f"{COMPONENTS}{name}/$defs/{_escape(key)}"] = COMPONENTS + new_name
            pending.append(new_name)
    if not moved:
        return result

    def rewritten(ref: str) -> str:
        # Longest prefix first: a definition nested in a definition moved twice.
        while True:
            prefix = max((old for old in moved if ref == old or ref.startswith(old + "/")), key=len, default=None)
            if prefix is None:
                return ref
            ref = moved[prefix] + ref[len(prefix):]

    for document in result.values():
        for node in _walk(document):
            if isinstance(node.get("$ref"), str):
                node["$ref"] = rewritten(node["$ref"])
            mapping = node.get("discriminator", {}).get("mapping") if isinstance(node.get("discriminator"), dict) \
                else None
            if isinstance(mapping, dict):
                for value, ref in mapping.items():
                    mapping[value] = rewritten(ref)
    return result


def _reachable(components: Mapping[str, dict[str, Any]], roots: list[str]) -> set[str]:
    """The components `roots` lead to: a schema file holding only `$defs` is left empty by hoisting."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in _walk(components[name]):
            for ref in _refs(node):
                pending.append(ref.removeprefix(COMPONENTS).split("/", 1)[0])
    return seen


def _escape(key: str) -> str:
    """A JSON-pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


# -- discriminator ------------------------------------------------------------------------------------


def _lookup(document: dict[str, Any]) -> Callable[[str], Any]:
    def resolve(ref: str) -> Any:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    return resolve


def _polymorphism(node: dict[str, Any], resolve: Callable[[str], Any]) -> None:
    """Give a `discriminator` the sub-schema list OpenAPI wants beside it, without changing what validates.

    simulator.validation reads `discriminator` as: property absent → no constraint; value mapped → the
    mapped schema must hold; anything else → invalid. Tools that ignore the keyword (any plain JSON
    Schema validator) must reach the same verdict. `oneOf` of the mapped schemas does when the property
    is required and each mapped schema admits only its own mapping values; otherwise an `if`/`then`
    per value says exactly what the keyword says.
    """
    discriminator = node.get("discriminator")
    if not isinstance(discriminator, dict) or "oneOf" in node or "anyOf" in node:
        return
    prop = discriminator["propertyName"]
    mapping: dict[str, str] = discriminator.get("mapping", {})
    targets = list(dict.fromkeys(mapping.values()))
    exclusive = prop in node.get("required", []) and all(
        _pins(resolve(target), prop, {value for value, ref in mapping.items() if ref == target}, resolve)
        for target in targets
    )
    if exclusive:
        node["oneOf"] = [{"$ref": target} for target in targets]
        return
    present = {"type": "object", "required": [prop]}
    node.setdefault("allOf", []).extend([
        *({"if": {**present, "properties": {prop: {"const": value}}}, "then": {"$ref": ref}}
          for value, ref in mapping.items()),
        {"if": present, "then": {"properties": {prop: {"enum": list(mapping)}}}},
    ])


def _pins(schema: Any, prop: str, allowed: set[str], resolve: Callable[[str], Any], depth: int = 0) -> bool:
    """Whether an object valid against `schema` that has `prop` can only have one of `allowed` there."""
    if not isinstance(schema, dict) or depth > 32:
        return False
    deeper = depth + 1
    if isinstance(schema.get("$ref"), str) and _pins(resolve(schema["$ref"]), prop, allowed, resolve, deeper):
        return True
    value = schema.get("properties", {}).get(prop) if isinstance(schema.get("properties"), dict) else None
    if _within(value, allowed, resolve, deeper):
        return True
    if any(_pins(part, prop, allowed, resolve, deeper) for part in schema.get("allOf", [])):
        return True
    for key in ("oneOf", "anyOf"):
        if schema.get(key) and all(_pins(part, prop, allowed, resolve, deeper) for part in schema[key]):
            return True
    discriminator = schema.get("discriminator")
    if isinstance(discriminator, dict) and discriminator.get("propertyName") in schema.get("required", []):
        # Every valid instance then satisfies one of the mapped schemas (see `_polymorphism`).
        targets = set(discriminator.get("mapping", {}).values())
        return bool(targets) and all(_pins(resolve(t), prop, allowed, resolve, deeper) for t in targets)
    return False


def _within(schema: Any, allowed: set[str], resolve: Callable[[str], Any], depth: int) -> bool:
    """Whether `schema` admits only values in `allowed`."""
    if not isinstance(schema, dict) or depth > 32:
        return False
    if "const" in schema:
        return isinstance(schema["const"], str) and schema["const"] in allowed
    if isinstance(schema.get("enum"), list):
        return all(isinstance(value, str) and value in allowed for value in schema["enum"])
    if isinstance(schema.get("$ref"), str) and _within(resolve(schema["$ref"]), allowed, resolve, depth + 1):
        return True
    return any(_within(part, allowed, resolve, depth + 1) for part in schema.get("allOf", []))
