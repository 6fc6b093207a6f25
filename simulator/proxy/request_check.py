"""A relayed request checked as the simulator would check it, without refusing it: the same stages as the
pipeline's (typed parameters, the body's media type, JSON, schema, unknown fields), reporting instead of raising."""

from __future__ import annotations

from simulator.pipeline import BadParameter, BodyError, Endpoint, Exchange, ProviderError
from simulator.pipeline.body import read_json, without_unknown_fields
from simulator.pipeline.parameters import read_parameters
from simulator.validation import Violation


def _of(error: ProviderError) -> list[Violation]:
    return list(error.violations) or [Violation((), error.kind, error.message)]


def request_violations(exchange: Exchange, endpoint: Endpoint) -> list[Violation]:
    """What is wrong with the request under our contract (empty when nothing is)."""
    provider, spec = endpoint.provider, endpoint.spec
    try:
        exchange.params = read_parameters(exchange, spec.parameters)
    except BadParameter as bad:
        return _of(provider.bad_parameter(exchange, bad))
    if spec.request is None:
        return []
    refusal = provider.refuse_media_type(exchange)
    if refusal is not None:
        return _of(refusal)
    try:
        value = read_json(exchange, provider.json_depth)
    except BodyError as problem:
        return _of(provider.unreadable_body(exchange, problem))
    if spec.each_item and isinstance(value, list):
        item = provider.item_schema(endpoint.operation)
        found = [Violation((index, *v.path), v.rule, v.message, v.value, v.expected, v.nearest, v.schema, v.doc)
                 for index, entry in enumerate(value) for v in provider.schemas.validate(item, entry).violations]
    else:
        schema = spec.request_schema(provider.options)
        assert schema is not None
        found = provider.schemas.validate(schema, value).violations
    exchange.body, kept = without_unknown_fields(exchange, provider.data, provider.options, value, found)
    return kept
