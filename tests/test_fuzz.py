"""Fuzzing every provider from its own OpenAPI export: bad input never gets a 500 or an answer off-contract.

Schemathesis generates requests, valid and invalid, from `GET /_sim/openapi/{slug}` and sends them to the
app in-process. The simulator runs with the self-check in strict mode, so an answer that breaks the
operations table comes back as a 500 and fails `not_a_server_error`; the declared statuses, media types and
response schemas are checked by Schemathesis itself, and so are the auth rules (a missing or wrong key is
401/403 once valid keys are configured).

Left out on purpose, with the reason:
- `negative_data_rejection`: a provider may accept what its schema does not promise to (Civitai binds an
  empty `toDate=` as no date); leniency is provider behaviour, not a simulator bug;
- `positive_data_acceptance`: schema-valid requests can still break documented rules the schema cannot
  express (an unknown task ID, an image that does not decode);
- `unsupported_method`, except for Civitai: a known path with a method it does not serve answers the
  provider's own 404 where no source says otherwise (Civitai answers 405 with `Allow`, and is checked).
Bounded and deterministic: derandomized, a fixed number of examples per operation.

Gemini's request bodies are the largest schemas here (every proto member has a snake_case twin, free-form
`Struct` members, discriminated parts): Schemathesis's coverage phase enumerates every case such a schema
defines (thousands per operation, minutes), and drawing one body takes about a second. So its body-carrying
operations are fuzzed in one route form each (the Gemini API's, plus Vertex AI's project form of
generateContent, which takes a Bearer token) with the examples and fuzzing phases and `BODY_EXAMPLES`
examples; every other Gemini operation gets all phases, as the other providers do. The Vertex express forms
share those handlers and schemas (the API tests cover their paths).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance, unsupported_method

from simulator.clock import VirtualClock
from simulator.options import provider_data
from simulator.sim import Simulator

KEY = "sk-fuzz"
EXAMPLES = 15
BODY_EXAMPLES = 3
# Vertex express forms, and the project forms other than generateContent: the same handlers and schemas.
GEMINI_OTHER_FORMS = r"^/\{v\}/publishers/|^/\{v\}/projects/.*:(?!generateContent$)"
GEMINI_BODIES = r":(generateContent|streamGenerateContent|countTokens|batchGenerateContent|predict)$"
EXCLUDED = [negative_data_rejection, positive_data_acceptance]

SIM = Simulator(clock=VirtualClock(autojump=True), self_check="strict")
for provider in SIM.providers.values():
    provider.valid_tokens = {KEY}


def _auth(slug: str) -> dict[str, str]:
    header = provider_data(slug).get("apiKeyHeader")
    return {header: KEY} if header else {"Authorization": f"Bearer {KEY}"}


def _fuzz(slug: str, *, include: str | None = None, exclude: str | None = None, examples: int = EXAMPLES,
          phases: list[str] | None = None) -> Callable[..., None]:
    schema = schemathesis.openapi.from_asgi(f"/_sim/openapi/{slug}", SIM.app)
    if include is not None:
        schema = schema.include(path_regex=include)
    if exclude is not None:
        schema = schema.exclude(path_regex=exclude)
    if phases is not None:
        schema.config.phases.update(phases=phases)

    excluded = EXCLUDED if SIM.provider(slug).wrong_method_status() == 405 else [*EXCLUDED, unsupported_method]

    @schema.parametrize()
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def test(case: Any) -> None:
        case.call_and_validate(headers=_auth(slug), excluded_checks=excluded)

    return test


test_civitai = _fuzz("civitai")
test_qingbo = _fuzz("qingbo")
test_runware = _fuzz("runware")
test_crun = _fuzz("crun")
test_foxapi = _fuzz("foxapi")
test_evolink = _fuzz("evolink")

test_gemini = _fuzz("gemini", exclude=GEMINI_BODIES)
test_gemini_bodies = _fuzz("gemini", include=GEMINI_BODIES, exclude=GEMINI_OTHER_FORMS, examples=BODY_EXAMPLES,
                           phases=["examples", "fuzzing"])
