"""The OpenAPI export: a valid 3.1 document per provider that says what the simulator serves and validates."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import server_fixture
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

import simulator
from simulator.cli import main
from simulator.control_client import ControlClient, ControlError
from simulator.examples import example_files, load_example
from simulator.live import LiveServer
from simulator.openapi import (
    OPERATION_KEY,
    _component_names,
    _components,
    described_routes,
    openapi_document,
    wire_body,
)
from simulator.operations import operations
from simulator.options import provider_data
from simulator.providers import available
from simulator.sim import Simulator
from simulator.validation import SchemaSet, schema_set

SLUGS = available()
URI = "https://nanobanana-sim.test/openapi.json"
COMPONENT_NAME = re.compile(r"^[a-zA-Z0-9.\-_]+$")

server = server_fixture("runware", "qingbo")


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {slug: openapi_document(slug) for slug in SLUGS}


def exported(document: dict[str, Any], ref: str) -> Draft202012Validator:
    """A plain draft 2020-12 validator for `ref` inside the document: it knows no `discriminator` keyword."""
    registry: Registry[Any] = Registry().with_resource(URI, DRAFT202012.create_resource(document))
    return Draft202012Validator({"$ref": URI + ref}, registry=registry)


def operations_in(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def refs_in(value: Any) -> Iterator[str]:
    """Every reference in the document: `$ref` values and discriminator mapping values."""
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"]
        if isinstance(value.get("discriminator"), dict):
            yield from value["discriminator"].get("mapping", {}).values()
        for item in value.values():
            yield from refs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs_in(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def request_schemas(slug: str) -> set[str]:
    defaults = {name: spec["default"] for name, spec in provider_data(slug).get("options", {}).items()}
    return {name for op in operations(slug).values() if (name := op.request_schema(defaults)) is not None}


@pytest.mark.parametrize("slug", SLUGS)
def test_document_is_valid_openapi_3_1(slug: str, documents: dict[str, dict[str, Any]]) -> None:
    document = documents[slug]
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == simulator.__version__
    assert f"schemas/{slug}/README.md" in document["info"]["description"]
    assert document["servers"][0]["url"] == f"https://{provider_data(slug)['hosts'][0]}"
    assert document["servers"][1]["url"] == f"http://127.0.0.1:8000/{slug}"


@pytest.mark.parametrize("slug", SLUGS)
def test_every_served_route_is_exported_once_with_its_method_and_path(
    slug: str, documents: dict[str, dict[str, Any]]
) -> None:
    document = documents[slug]
    routes = described_routes(Simulator(providers=[slug]).provider(slug).routes())
    defaults = {name: spec["default"] for name, spec in provider_data(slug).get("options", {}).items()}
    expected: set[tuple[str, str, str]] = set()
    for route in routes:
        name = route.name.split(":", 1)[1]
        switch = operations(slug)[name].enabled_by
        if switch and not defaults[switch]:
            continue  # an opt-in route (qingbo's legacy sync) answers 404 under the defaults: not exported
        methods = set(route.methods or ()) - {"HEAD"} or {"HEAD"}  # Starlette adds HEAD to every GET route
        path = route.path.rstrip("/") or "/"  # runware also answers /v1/: one operation, not two
        expected |= {(path, method.lower(), name) for method in methods}
    found = {(path, method, op[OPERATION_KEY]) for path, method, op in operations_in(document)}
    assert found == expected
    ids = [op["operationId"] for _, _, op in operations_in(document)]
    assert len(ids) == len(set(ids))
    assert "UnknownRoute" not in ids and not any("{path" in path for path in document["paths"])


@pytest.mark.parametrize("slug", SLUGS)
def test_every_exported_operation_has_its_table_entry(slug: str, documents: dict[str, dict[str, Any]]) -> None:
    table = operations(slug)
    defaults = {name: spec["default"] for name, spec in provider_data(slug).get("options", {}).items()}
    names = _component_names(schema_set(slug))
    for path, method, op in operations_in(document := documents[slug]):
        spec = table.get(op[OPERATION_KEY])
        assert spec is not None, f"{slug} serves {method.upper()} {path} as {op['operationId']}, not in operations"
        assert op["summary"] == spec.summary
        assert list(op["responses"]) == list(spec.responses)
        request = spec.request_schema(defaults)
        body = op.get("requestBody", {}).get("content", {}).get(spec.request_media, {}).get("schema")
        assert body == ({"$ref": f"#/components/schemas/{names[request]}"} if request else None)
        params = {(p["in"], p["name"]) for p in op.get("parameters", [])}
        assert {name for where, name in params if where == "path"} == set(re.findall(r"\{(\w+)\}", path))
        for response in op["responses"].values():
            assert response["description"]
            if method == "head":
                assert "content" not in response
    assert document["components"]["securitySchemes"]


def test_auth_is_the_providers_header_and_signed_links_need_none(documents: dict[str, dict[str, Any]]) -> None:
    crun = documents["crun"]
    assert crun["components"]["securitySchemes"] == {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}
    assert crun["security"] == [{"apiKey": []}]
    civitai = documents["civitai"]
    assert civitai["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert civitai["paths"]["/v2/consumer/blobs/content/{token}"]["get"]["security"] == []
    assert "security" not in civitai["paths"]["/v2/consumer/workflows"]["post"]
    for slug in ("qingbo", "runware", "crun", "foxapi", "evolink"):
        downloads = [op for _, _, op in operations_in(documents[slug]) if op["operationId"] == "DownloadImage"]
        assert len(downloads) == 1 and downloads[0]["security"] == []
    # The auth header is the security scheme, never a parameter.
    for slug in SLUGS:
        for _, _, op in operations_in(documents[slug]):
            headers = {p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"}
            assert not headers & {"authorization", "x-api-key", "accept"}
    qingbo_submit = documents["qingbo"]["paths"]["/v1/tasks"]["post"]
    assert {p["name"] for p in qingbo_submit["parameters"] if p["in"] == "header"} == {"Prefer", "Idempotency-Key"}


def test_civitai_problem_bodies_are_problem_json(documents: dict[str, dict[str, Any]]) -> None:
    submit = documents["civitai"]["paths"]["/v2/consumer/workflows"]["post"]["responses"]
    assert submit["400"]["content"] == {"application/problem+json": {"schema": {"anyOf": [
        {"$ref": "#/components/schemas/ValidationProblemDetailsResponse"},
        {"$ref": "#/components/schemas/ProblemDetailsResponse"},
    ]}}}
    # A 403 is a bare JSON string (insufficient Buzz) or a problem: one schema per media type.
    assert set(submit["403"]["content"]) == {"application/json", "application/problem+json"}
    assert submit["200"]["description"] == "OK: Workflow"
    assert submit["default"]["description"].startswith("Any other status")


@pytest.mark.parametrize("slug", SLUGS)
def test_every_reference_resolves_inside_the_document(slug: str, documents: dict[str, dict[str, Any]]) -> None:
    document = documents[slug]
    components = document["components"]["schemas"]
    refs = list(refs_in(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert isinstance(resolve(document, ref), dict), ref
    for name, schema in components.items():
        assert COMPONENT_NAME.match(name)
        assert "$id" not in json.dumps(schema) and "$schema" not in schema
    # Nothing is embedded that no operation reaches, directly or through other schemas.
    targets = {ref.removeprefix("#/components/schemas/").split("/", 1)[0] for ref in refs}
    assert targets == set(components)


@pytest.mark.parametrize("slug", SLUGS)
def test_discriminators_come_with_the_subschemas_openapi_wants(
    slug: str, documents: dict[str, dict[str, Any]]
) -> None:
    def nodes(value: Any) -> Iterator[dict[str, Any]]:
        if isinstance(value, dict):
            yield value
            for item in value.values():
                yield from nodes(item)
        elif isinstance(value, list):
            for item in value:
                yield from nodes(item)

    polymorphic = [node for node in nodes(documents[slug]["components"]) if "discriminator" in node]
    for node in polymorphic:
        mapped = list(dict.fromkeys(node["discriminator"]["mapping"].values()))
        assert node.get("oneOf") == [{"$ref": ref} for ref in mapped] or "allOf" in node


@pytest.mark.parametrize("slug", SLUGS)
def test_attached_request_examples_are_valid_against_the_exported_schema(
    slug: str, documents: dict[str, dict[str, Any]]
) -> None:
    document = documents[slug]
    schemas = schema_set(slug)
    names = {f"#/components/schemas/{component}": name for name, component in _component_names(schemas).items()}
    submits = set(provider_data(slug).get("submitOperations", []))
    checked = 0
    for _, _, op in operations_in(document):
        if "requestBody" not in op:
            continue
        [media] = op["requestBody"]["content"].values()
        validator = exported(document, media["schema"]["$ref"])
        request = names[media["schema"]["$ref"]]
        attached = media.get("examples", {})
        if op["operationId"] in submits:
            assert attached, f"{slug} {op['operationId']} has no documented example attached"
        for stem, example in attached.items():
            assert not list(validator.iter_errors(example["value"])), stem
            checked += 1
        # Attached are exactly the shipped examples our own validation accepts for that schema.
        expected = {
            path.stem for path in example_files(slug, "requests")
            if schemas.validate(request, wire_body(load_example(path), schemas.document(request))).ok
        }
        assert set(attached) == expected
        assert list(attached) == sorted(attached)
    assert checked


@pytest.mark.parametrize("slug", SLUGS)
def test_exported_schemas_judge_every_shipped_example_as_the_simulator_does(
    slug: str, documents: dict[str, dict[str, Any]]
) -> None:
    """Rewriting references and turning `discriminator` into `oneOf` kept the meaning: valid, invalid
    and response examples get the same verdict from a plain JSON Schema validator on the export."""
    document = documents[slug]
    schemas = schema_set(slug)
    components = _component_names(schemas)
    exported_names = {name for name, component in components.items() if component in document["components"]["schemas"]}
    rejected_invalid = 0
    for kind in ("requests", "invalid", "responses"):
        prefix = "request/" if kind != "responses" else "response/"
        for path in example_files(slug, kind):
            loaded = load_example(path)
            for name in sorted(n for n in exported_names if n.startswith(prefix)):
                body = wire_body(loaded, schemas.document(name))
                ours = schemas.validate(name, body).ok
                theirs = exported(document, f"#/components/schemas/{components[name]}").is_valid(body)
                assert ours == theirs, f"{path.name} against {name}: simulator {ours}, export {theirs}"
                if kind == "invalid" and name in request_schemas(slug) and not ours:
                    rejected_invalid += 1
    assert rejected_invalid, "no invalid example is rejected by a request schema: the check proves nothing"


def test_unpinned_discriminator_keeps_its_meaning(tmp_path: Path) -> None:
    """When the mapped schemas do not pin the property, `oneOf` would change verdicts; the export says the
    same thing with `if`/`then` instead."""
    folder = tmp_path / "toy" / "request"
    folder.mkdir(parents=True)
    (tmp_path / "_shared").mkdir()
    pet = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["kind"],
        "discriminator": {"propertyName": "kind", "mapping": {"cat": "#/$defs/Cat", "dog": "animals.json#/$defs/Dog"}},
        "$defs": {"Cat": {"type": "object", "required": ["meow"]}},
    }
    animals = {"$schema": "https://json-schema.org/draft/2020-12/schema",
               "$defs": {"Dog": {"type": "object", "required": ["bark"]}}}
    (folder / "pet.json").write_text(json.dumps(pet))
    (folder / "animals.json").write_text(json.dumps(animals))
    schemas = SchemaSet("toy", root=tmp_path)
    components = _components(schemas, _component_names(schemas), ["request/pet"])
    # Each $defs entry is a component of its own (Prism cannot follow references into a component's $defs).
    assert set(components) == {"PetRequest", "PetRequest_Cat", "AnimalsRequest_Dog"}
    assert "oneOf" not in components["PetRequest"] and "allOf" in components["PetRequest"]
    document = {"components": {"schemas": components}}
    validator = exported(document, "#/components/schemas/PetRequest")
    for instance in ({"kind": "cat", "meow": 1}, {"kind": "cat", "bark": 1}, {"kind": "dog", "bark": 1, "meow": 1},
                     {"kind": "cow", "meow": 1}, {"kind": 3}, {"meow": 1}, [], "cat"):
        assert validator.is_valid(instance) == schemas.validate("request/pet", instance).ok, instance


def test_cli_writes_the_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "civitai.json"
    assert main(["openapi", "civitai", "--output", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == openapi_document("civitai")
    assert main(["openapi", "crun", "--server-url", "http://localhost:9/crun"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["servers"] == [{"url": "http://localhost:9/crun", "description": "This nanobanana-sim"}]
    assert printed["paths"] == openapi_document("crun")["paths"]


def test_cli_refuses_an_unknown_provider(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["openapi", "nope"])
    assert exited.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_control_plane_serves_the_document_with_its_own_server(
    control: ControlClient, server: LiveServer, http: httpx.Client
) -> None:
    document = control.openapi("runware")
    assert document["servers"][0]["url"] == server.provider_url("runware")
    assert {k: v for k, v in document.items() if k != "servers"} == {
        k: v for k, v in openapi_document("runware").items() if k != "servers"
    }
    # The document drives the simulator it came from: its example, sent to its server, gets a body its
    # own response schema accepts; so does a refusal.
    submit = document["paths"]["/v1"]["post"]
    ping = submit["requestBody"]["content"]["application/json"]["examples"]["dossier-2.2-ping"]["value"]
    url = document["servers"][0]["url"] + "/v1"
    answered = http.post(url, json=ping, headers={"Authorization": "Bearer k"})
    assert answered.status_code == 200
    schema = submit["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert exported(document, schema).is_valid(answered.json())
    refused = http.post(url, json=[{"taskType": "imageInference"}], headers={"Authorization": "Bearer k"})
    assert refused.status_code >= 400
    status = str(refused.status_code) if str(refused.status_code) in submit["responses"] else "default"
    schema = submit["responses"][status]["content"]["application/json"]["schema"]["$ref"]
    assert exported(document, schema).is_valid(refused.json())


def test_control_plane_document_follows_the_served_options(control: ControlClient) -> None:
    submit = control.openapi("qingbo")["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]
    assert submit["schema"] == {"$ref": "#/components/schemas/TaskEnRequest"}
    control.set_options("qingbo", contract="cn")
    document = control.openapi("qingbo")
    submit = document["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]
    assert submit["schema"] == {"$ref": "#/components/schemas/TaskCnRequest"}
    assert "cn-edit-with-mask" in submit["examples"]
    validate(document)
    assert "/v1/tasks/sync" not in document["paths"]  # opt-in: served (and exported) only once switched on
    control.set_options("qingbo", legacy_sync_endpoint=True)
    assert control.openapi("qingbo")["paths"]["/v1/tasks/sync"]["post"]["operationId"] == "SubmitTaskSync"


def test_control_plane_refuses_a_provider_it_does_not_serve(control: ControlClient) -> None:
    with pytest.raises(ControlError, match="404") as refused:
        control.openapi("civitai")
    assert "not served" in str(refused.value)
    with pytest.raises(ControlError, match="404"):
        control.openapi("nope")
