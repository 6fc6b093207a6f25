"""Every named option has a type and a range in data, checked wherever a value is set."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from simulator.clock import VirtualClock
from simulator.faults import scenario
from simulator.faults.plan import PlanError
from simulator.options import OptionError, ProviderOptions, option_schema, provider_data, provider_slugs
from simulator.sim import Simulator


def ranged(spec: dict[str, Any]) -> bool:
    """Whether a spec bounds its values: choices, both ends of a number, or a bounded list of ranged items."""
    kind = spec.get("type")
    if "choices" in spec or kind == "boolean":
        return True
    if kind in ("number", "integer"):
        return "maximum" in spec and ("minimum" in spec or "exclusiveMinimum" in spec)
    if kind == "array":
        return "maxItems" in spec and ranged(spec.get("items", {}))
    if kind == "string":
        return "maxLength" in spec or "enum" in spec
    return False


@pytest.mark.parametrize("slug", provider_slugs())
def test_every_option_has_a_type_and_a_range_that_its_default_meets(slug: str) -> None:
    options = ProviderOptions(slug)
    for name, spec in provider_data(slug)["options"].items():
        assert "type" in spec and ranged(spec), f"{slug}.{name} needs a type and a range"
        Draft202012Validator.check_schema(option_schema(spec))
        assert options.checked(name, spec["default"]) == spec["default"], name
        for choice in spec.get("choices", []):
            assert options.checked(name, choice) == choice


def test_values_are_checked_whole_and_named() -> None:
    options = ProviderOptions("civitai")
    with pytest.raises(OptionError) as refused:
        options.update({"wait_cap_seconds": 50, "url_ttl_seconds": -5})
    assert refused.value.field == "url_ttl_seconds"
    assert str(refused.value) == ("url_ttl_seconds: civitai.url_ttl_seconds takes a number from 0 to 31536000, "
                                  "not -5")
    assert options["wait_cap_seconds"] == 100  # the good value of a refused call is not kept either
    with pytest.raises(OptionError, match=r"a list of at most 20 items, each a number from 0 to 86400, not \[1, -1\]"):
        options.set("callback_retry_delays", [1, -1])
    options.set("max_json_depth", 32.0)
    assert options["max_json_depth"] == 32 and isinstance(options["max_json_depth"], int)


def test_command_line_options_are_json_text_checked_the_same_way() -> None:
    sim = Simulator(clock=VirtualClock(), providers=["civitai"], options={"civitai": {"url_ttl_seconds": "60"}})
    assert sim.provider("civitai").options["url_ttl_seconds"] == 60
    for text in ("-5", "NaN", "Infinity", "1e400", "sixty", '"60"'):
        with pytest.raises(OptionError, match="url_ttl_seconds"):
            Simulator(clock=VirtualClock(), providers=["civitai"], options={"civitai": {"url_ttl_seconds": text}})


def test_scenario_options_are_checked_before_anything_changes() -> None:
    sim = Simulator(clock=VirtualClock(), providers=["civitai", "qingbo"])
    bad = scenario.parse("options: {civitai: {url_ttl_seconds: 30}, qingbo: {prompt_max_chars: -1}}\n", "mine")
    with pytest.raises(PlanError) as refused:
        sim.load_scenario(bad)
    assert refused.value.field == "mine.options.qingbo.prompt_max_chars"
    assert sim.provider("civitai").options["url_ttl_seconds"] == 600 and sim.scenarios == []
