"""Units of the shared gateway module: templates, the data card's start-up checks, callback URL policy."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from test_gateway_support import SLUGS

from simulator.clock import VirtualClock
from simulator.options import provider_data
from simulator.providers.gateway.card import GatewayCard
from simulator.providers.gateway.templates import Template
from simulator.sim import Simulator


def test_templates_fill_values_and_drop_or_keep_absent_ones() -> None:
    shape = {"id": "$id", "fixed": "image", "nested": {"a": "$a", "b": [1, "$b"]}, "gone": "$none"}
    values = {"id": "t", "a": None, "b": 2, "none": None}
    assert Template(shape, omit_absent=True).fill(values) == {"id": "t", "fixed": "image", "nested": {"b": [1, 2]}}
    assert Template(shape, omit_absent=False).fill(values) == {
        "id": "t", "fixed": "image", "nested": {"a": None, "b": [1, 2]}, "gone": None,
    }
    assert Template(shape, omit_absent=True).names() == {"id", "a", "b", "none"}
    assert Template("$url", omit_absent=True).fill({"url": "u"}) == "u"
    with pytest.raises(ValueError, match="absent"):
        Template.from_data({"absent": "drop", "template": {}}, "x")


@pytest.mark.parametrize("slug", SLUGS)
def test_both_cards_load(slug: str) -> None:
    card = GatewayCard.load(slug, provider_data(slug))
    assert set(card.routes) == {"create", "task", "credits"}
    assert card.task_id.prefix == "task-unified-"
    assert (card.callback is not None) == (slug == "evolink")


def _broken(slug: str, change: Any) -> dict[str, Any]:
    data = copy.deepcopy(provider_data(slug))
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["gateway"]["bodies"]["detail"]["template"].update(extra="$nonsense"), "unknown values"),
        (lambda d: d["options"].pop("url_ttl_seconds"), "lacks the options"),
        (lambda d: d["options"].pop("callback_retry_delays"), "lacks the options"),
        (lambda d: d["gateway"]["errors"].pop("task_not_found"), "lacks the error conditions"),
    ],
    ids=["template-value", "option", "callback-option", "error-condition"],
)
def test_a_card_with_a_gap_fails_at_start_up(change: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GatewayCard.load("evolink", _broken("evolink", change))


@pytest.fixture(scope="module")
def evolink() -> Any:
    return Simulator(clock=VirtualClock(), providers=["evolink"]).provider("evolink")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/x", True),
        ("http://127.0.0.1:9000/x", True),
        ("http://localhost/x", True),
        ("http://[::1]:9000/x", True),
        ("http://hooks.example.com/x", False),
        ("https://172.20.0.1/x", False),
        ("https://169.254.169.254/latest", False),
        ("https:///nohost", False),
        ("https://example.com/" + "a" * 2049, False),
    ],
)
def test_callback_url_policy(evolink: Any, url: str, allowed: bool) -> None:
    assert (evolink.callbacks.problem(url) is None) is allowed


def test_error_table_values_can_follow_an_option() -> None:
    foxapi = Simulator(clock=VirtualClock(), providers=["foxapi"]).provider("foxapi")
    assert foxapi.errors.entry("invalid_request")["type"] == "invalid_request_error"
    foxapi.options.set("validation_error_type", "validation_error")
    response = foxapi.errors.response("unsupported_options", options="image_search")
    assert json.loads(response.body)["error"]["type"] == "validation_error"
