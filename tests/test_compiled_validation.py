"""The compiled validator (jsonschema-rs) decides the happy path; the detailed one words the violations.

They must agree: a body the compiled side accepts is one the detailed validator finds nothing wrong with
(else a bad request would pass unrefused), and the other way round (else a good request would pay for the
detailed path, or, where the detailed path finds nothing, still pass, but slowly). Checked on every documented
example, valid and invalid, against every request and response schema of its provider.
"""

from __future__ import annotations

import pytest
from support_examples import SLUGS, documented_bodies

from simulator.validation import schema_set


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("slug", SLUGS)
def test_compiled_and_detailed_validators_agree_on_every_example(slug: str) -> None:
    schemas = schema_set(slug)
    names = [name for name in schemas.names() if name.startswith(("request/", "response/"))]
    instances = documented_bodies(slug)
    assert names and instances
    disagreements = []
    for file, instance in instances:
        for name in names:
            detailed = not schemas._validator(name).is_valid(instance)
            compiled = not schemas.accepts(name, instance)
            if detailed != compiled:
                disagreements.append(f"{file} against {name}: detailed invalid={detailed}, compiled={compiled}")
    assert not disagreements, "\n".join(disagreements)


def test_a_discriminator_value_outside_its_mapping_is_refused_by_both() -> None:
    schemas = schema_set("civitai")
    body = {"steps": [{"$type": "imageGen", "input": {"engine": "google", "model": "nano-banana-3", "prompt": "x"}}]}
    assert not schemas.accepts("request/workflow-template", body)
    report = schemas.validate("request/workflow-template", body)
    assert [v.rule for v in report.violations] == ["discriminator"]


@pytest.mark.parametrize("odd", ["\ud800", 10**40, float("nan"), _nested(40)],
                         ids=["lone-surrogate", "huge-int", "nan", "deep"])
def test_hostile_values_get_the_same_verdict_from_both(odd: object) -> None:
    schemas = schema_set("qingbo")
    for name in (n for n in schemas.names() if n.startswith("request/")):
        instance = {"model": "gemini-3.1-flash-image-preview", "prompt": odd}
        assert schemas.accepts(name, instance) == schemas._validator(name).is_valid(instance), name
        assert schemas.validate(name, instance).ok == schemas._validator(name).is_valid(instance), name


def test_every_schema_compiles() -> None:
    for slug in SLUGS:
        schemas = schema_set(slug)
        for name in schemas.names():
            schemas.accepts(name, {})
