"""What every provider module is: its endpoints' handlers (engine calls) and its own wire format.

A provider declares endpoints (`routes`), each a handler `async (Exchange) -> Answer` for one operation of
its operations table, and renders its own envelopes (`error`, `validation_error`). The pipeline
(simulator.pipeline) does the rest the same way for every provider and every transport: it authenticates,
reads typed parameters and the validated body, applies limits and fault rules, and asks the hooks below
how this provider words a refusal. A handler refuses by raising `ProviderError`.
"""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Callable, Collection, Hashable
from typing import Any, ClassVar

from simulator.engine import Engine, Phase, RetryPolicy, Task
from simulator.engine.webhooks import callback_refusal
from simulator.faults.errors import error_spec, fault_headers
from simulator.faults.plan import lookup
from simulator.operations import Operation, operations
from simulator.options import ProviderOptions, provider_data
from simulator.pipeline import (
    DEFAULT_BODY_LIMIT,
    INVALID,
    MAX_JSON_DEPTH,
    Answer,
    BadParameter,
    BodyError,
    Endpoint,
    Exchange,
    Handler,
    ProviderError,
    Refuser,
    Replay,
)
from simulator.pipeline.conversation import SocketTerms
from simulator.pipeline.settled import CAPACITY as SETTLED_CAPACITY
from simulator.pipeline.settled import Late, SettledAnswers
from simulator.validation import SchemaSet, ValidationReport, Violation, schema_set

# Keys and URL bases up to this long are interned: every stored task and journal entry names them.
SHARED_TEXT = 256


class Provider:
    """Base for provider modules. Subclasses set `slug`, declare `routes()` and render their envelopes."""

    slug: ClassVar[str]

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.data: dict[str, Any] = provider_data(self.slug)
        self.options = ProviderOptions(self.slug)
        self.schemas: SchemaSet = schema_set(self.slug)
        self.operations: dict[str, Operation] = operations(self.slug)
        self.valid_tokens: set[str] | None = None
        # Never more kept answers than stored tasks: an entry holds its task, so a larger cache would keep
        # retired tasks alive and a long run under a small --task-capacity would grow until it filled.
        self.settled = SettledAnswers(min(SETTLED_CAPACITY, engine.tasks.capacity))
        self.attach()

    def attach(self) -> None:
        self.engine.listen(self.slug, self.on_event)
        if "defaultBalance" in self.data:
            # Each provider's own unit: a generic default would be a few images in one and millions in another.
            self.engine.wallets.set_default(self.slug, float(self.data["defaultBalance"]))

    @property
    def hosts(self) -> list[str]:
        return list(self.data.get("hosts", []))

    def reset(self) -> None:
        self.options.reset()
        self.valid_tokens = None
        self.settled.clear()
        self.attach()

    # -- to be provided by each provider -----------------------------------------------------------

    def routes(self) -> list[Endpoint]:
        raise NotImplementedError

    def error(self, status: int, message: str, *, code: str | None = None) -> Answer:
        """The provider's own error envelope for a status (401, 404, 500 …)."""
        raise NotImplementedError

    def validation_error(self, violations: list[Violation]) -> Answer:
        raise NotImplementedError

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        """A task of this provider reached `phase` at clock time `at` (callbacks hang off this)."""

    def socket_terms(self) -> tuple[str, SocketTerms] | None:
        """The operation a WebSocket on this provider's paths carries (each text frame is one exchange of it, as a
        POST body would be) and how the socket behaves; None: the provider has no WebSocket API."""
        return None

    # -- declaring endpoints -------------------------------------------------------------------------

    def route(self, path: str, handler: Handler, methods: Collection[str], operation: str, *,
              refuse: Refuser | None = None, replay: Replay | None = None, query: str | None = None,
              mounted: bool = False) -> Endpoint:
        """An endpoint of `operation` (a name in the operations table). `refuse` renders forced errors when the
        route is not the provider's API (a CDN link answers like an object store); `replay` may answer a
        repeated request from what the first one made, before its body is read (an Idempotency-Key)."""
        if operation not in self.operations:
            raise KeyError(f"{self.slug}: operation {operation!r} is not in the operations table")
        return Endpoint(self, path, frozenset(methods), operation, handler, refuse, replay, query, mounted)

    # -- how this provider refuses (asked by the pipeline's stages) -----------------------------------

    def presented_key(self, exchange: Exchange) -> str | None:
        """The API key an exchange carries, before it is checked: the transport's own credential, else the
        provider's API-key header (provider.json `apiKeyHeader`), else its query parameter (`apiKeyQuery`:
        Google's `?key=`), else `Authorization: Bearer` (for a provider with its own header, only where the
        option named by `bearerOption` accepts it)."""
        if exchange.credential:
            return exchange.credential
        header = self.data.get("apiKeyHeader")
        if header:
            key = exchange.headers.get(header, "").strip()
            if not key and "apiKeyQuery" in self.data:
                key = exchange.query.get(self.data["apiKeyQuery"], "").strip()
            bearer_option = self.data.get("bearerOption")
            if key or not (bearer_option and self.options[bearer_option]):
                return key or None
        return exchange.bearer_token()

    def authenticate(self, exchange: Exchange) -> str:
        """The presented key if it is acceptable (any non-empty one unless a list was set); else the refusal."""
        key = exchange.api_key
        if not key or (self.valid_tokens is not None and key not in self.valid_tokens):
            raise self.unauthorized(exchange)
        if len(key) <= SHARED_TEXT:
            key = sys.intern(key)  # one string for the thousands of tasks, moves and entries a key owns
        exchange.owner = key
        return key

    def unauthorized(self, exchange: Exchange) -> ProviderError:
        """A missing (`exchange.api_key` None) or unknown key; by default the `unauthorized` fault's wording."""
        message = str(error_spec(self.data.get("faults", {}), {"error": "unauthorized"})["message"])
        return ProviderError("unauthorized", message, status=401)

    def bad_parameter(self, exchange: Exchange, bad: BadParameter) -> ProviderError:
        """A typed query/path parameter that is absent where required or does not fit its schema."""
        if bad.rule == "required":
            return ProviderError.invalid([Violation((bad.name,), "required", f"'{bad.name}' is required")])
        message = f"The value '{bad.raw}' is not valid for {bad.name}."
        return ProviderError.invalid([Violation((bad.name,), "parameter", message, bad.raw)])

    def refuse_media_type(self, exchange: Exchange) -> ProviderError | None:
        """A refusal of the body's Content-Type before it is read (most providers read any as JSON)."""
        return None

    @property
    def json_depth(self) -> int:
        return MAX_JSON_DEPTH

    @property
    def body_limit(self) -> int:
        """The largest request body this provider reads (provider.json `bodyLimit`); a larger one is refused
        with its `payload_too_large` fault while it arrives."""
        return int(self.data.get("bodyLimit", {}).get("bytes", DEFAULT_BODY_LIMIT))

    def unreadable_body(self, exchange: Exchange, problem: BodyError) -> ProviderError:
        return ProviderError.invalid([Violation((), "json", str(problem))])

    def render_error(self, exchange: Exchange, error: ProviderError) -> Answer:
        """A refusal in this provider's envelope: violations in its validation body, anything else by status."""
        if error.kind == INVALID:
            answer = self.validation_error(error.violations)
        else:
            answer = self.error(error.status or 500, error.message, code=error.code)
        return answer.with_headers(error.headers) if error.headers else answer

    def render_fault(self, exchange: Exchange, do: dict[str, Any]) -> Answer:
        """A forced error in this provider's own envelope (kinds and wording from provider.json `faults`)."""
        spec = error_spec(self.data.get("faults", {}), do)
        answer = self.error(int(spec["status"]), str(spec["message"]), code=spec.get("code"))
        return answer.with_headers(fault_headers(spec, do))

    def wrong_method_status(self) -> int:
        """What a known path answers to a method it does not serve: 404 unless the provider's option says 405."""
        return int(self.options["wrong_method_status"]) if self.options.has("wrong_method_status") else 404

    def status_that_counts(self, status: int, body: Any) -> int:
        """The status a response means (a provider may answer HTTP 200 with an error code in the body)."""
        return status

    # -- what rules and limits match on ----------------------------------------------------------------

    def model_of(self, body: Any, path_params: dict[str, str] | None = None) -> str | None:
        """The model a request names: provider.json `modelPaths`, dotted paths into the body, or `path.NAME`
        for a model named in the URL (Google's `models/{model}:generateContent`)."""
        for path in self.data.get("modelPaths", []):
            if path.startswith("path."):
                found = (path_params or {}).get(path.removeprefix("path."))
            else:
                found = lookup(body, path)
            if isinstance(found, str):
                return found
        return None

    def submits(self, operation: str, body: Any) -> bool:
        """Whether this request creates generation work (concurrency limits guard only such requests)."""
        return operation in self.data.get("submitOperations", [])

    def in_flight(self, api_key: str | None, now: float) -> list[float]:
        """When each unfinished task of the key will finish (for concurrency limits)."""
        return [
            task.terminal_at() for task in self.engine.tasks.all(self.slug)
            if task.owner == api_key and not task.phase(now).terminal
        ]

    # -- shared helpers ------------------------------------------------------------------------------

    def settled_answer(self, exchange: Exchange, task: Task, render: Callable[[Late], Answer],
                       *key: Hashable) -> Answer:
        """The answer `render` gives for a task whose reading no longer moves with the clock, rendered once per
        state of the task and of the options (see simulator.pipeline.settled); `key` names whatever else the
        rendering reads besides the task, the options, the operation and the base URL."""
        return self.settled.answer(task, (exchange.operation, exchange.base_url, self.options.revision, *key),
                                   self.engine.now(), render)

    def with_defaults(self, exchange: Exchange, body: Any) -> Any:
        """`body` with the defaults of the request schema the exchange's body was validated against."""
        assert exchange.schema is not None, f"{exchange.operation} takes no request body"
        return self.schemas.with_defaults(exchange.schema, body)

    def validate_as(self, operation: str, document: Any) -> ValidationReport:
        """`document` checked as a body of `operation` (e.g. a JSON-Patch result as the PUT body it stands for)."""
        schema = self.operations[operation].request_schema(self.options)
        assert schema is not None, f"{operation} takes no request body"
        return self.schemas.validate(schema, document)

    def item_schema(self, operation: str) -> str:
        """The schema each item of `operation`'s array body is validated against (its `items` reference)."""
        name = self.operations[operation].request_schema(self.options)
        assert name is not None, f"{operation} takes no request body"
        reference = str(self.schemas.document(name)["items"]["$ref"])
        return posixpath.join(posixpath.dirname(name), reference.removesuffix(".json"))

    def callback_violations(self, path: tuple[str | int, ...], url: Any) -> list[Violation]:
        """The engine's one callback-destination rule (simulator.engine.webhooks.callback_refusal) as a violation
        of the field at `path`, rendered in the provider's own validation shape; loopback receivers are allowed
        unless the provider's `allow_http_callbacks_to_loopback` option says otherwise."""
        if not isinstance(url, str) or not url:
            return []
        option = "allow_http_callbacks_to_loopback"
        loopback = bool(self.options[option]) if self.options.has(option) else True
        problem = callback_refusal(url, https_only=False, loopback=loopback)
        if problem is None:
            return []
        return [Violation(path, "callbackUrl", f"The URL {problem}.", url, "a public http(s) URL")]

    def retry_policy(self, delays: str = "callback_retry_delays",
                     timeout: str = "callback_timeout_seconds") -> RetryPolicy:
        """A callback retry policy from the provider's options (delays before each retry, the attempt timeout)."""
        return RetryPolicy(tuple(float(d) for d in self.options[delays]), float(self.options[timeout]))
