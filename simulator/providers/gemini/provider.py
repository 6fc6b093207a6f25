"""Google's own Nano Banana API: the Gemini API (generateContent, stream, Batch, Files) and Vertex AI.

Routes come from provider.json `routes` (every API version, with or without a path prefix, the Gemini API
and Vertex AI's project and express forms); this module translates them to engine calls and draws Google's
answers: GenerateContentResponse, long-running Batch operations, Files, and `google.rpc.Status` errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from simulator.engine import Engine, Phase, Task
from simulator.faults.errors import error_spec, fault_headers
from simulator.images import InvalidImageReference, decode_image_reference
from simulator.pipeline import INVALID, Answer, BodyError, Endpoint, Exchange, Handler, ProviderError
from simulator.pipeline.pages import page, position
from simulator.pipeline.routing import UNKNOWN_ROUTE
from simulator.providers.base import Provider
from simulator.providers.gemini import imagen
from simulator.providers.gemini.batches import Batches
from simulator.providers.gemini.files import Files
from simulator.providers.gemini.generate import Ask, Generator, Reference, Responses, stream_events
from simulator.providers.gemini.models import (
    INPUT_IMAGE_TOKENS,
    Model,
    check_image_config,
    find_model,
    prompt_tokens,
    refuse_unknown,
)
from simulator.providers.gemini.proto import normalise, proto_path
from simulator.providers.gemini.status import NOT_FOUND_PAGE, Wording, details, fill
from simulator.validation import Violation

VERTEX_MARK = "/publishers/google/"
GENERATE_OPERATIONS = frozenset({"GenerateContent", "StreamGenerateContent"})
# The server's own deadlines (dossier §2): a call still running then answers 504.
UNARY_DEADLINE, STREAM_DEADLINE = 600.0, 1200.0
PROJECT_NUMBER = "000000000000"
# RetryInfo of a rate_limited rule that names no delay: Google's per-minute quotas refill within a minute.
DEFAULT_RETRY_SECONDS = 60.0


class GeminiProvider(Provider):
    slug: ClassVar[str] = "gemini"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.wording = Wording(self.data)
        self.files = Files(self)
        self.batches = Batches(self)

    def reset(self) -> None:
        super().reset()
        self.files.reset()

    @property
    def generator(self) -> Generator:
        return Generator(self.engine, self.data, self.options)

    @property
    def responses(self) -> Responses:
        return Responses(self.engine, self.data, self.options)

    # -- routes --------------------------------------------------------------------------------------

    def routes(self) -> list[Endpoint]:
        handlers: dict[str, Handler] = {
            "GenerateContent": self.generate, "StreamGenerateContent": self.stream, "CountTokens": self.count_tokens,
            "Predict": self.predict, "GetModel": self.get_model, "ListModels": self.list_models,
            **self.batches.handlers(), **self.files.handlers(),
        }
        entries = [(operation, entry) for operation, listed in self.data["routes"].items() if operation != "$comment"
                   for entry in listed]
        # First match wins: a method suffix (`:download`) before the bare resource, a longer form before the
        # shorter one it contains (Vertex's project path holds `/models/{model}`), a query-selected twin first.
        entries.sort(key=lambda item: (":" not in item[1]["path"], "query" not in item[1], -len(item[1]["path"])))
        return [self.route(entry["path"], self._versioned(entry["api"], handlers[operation]), [entry["method"]],
                           operation, query=entry.get("query"), mounted=True)
                for operation, entry in entries]

    def _versioned(self, api: str, handler: Handler) -> Handler:
        versions = self.data["apis"][api]["versions"]

        async def versioned(exchange: Exchange) -> Answer:
            if exchange.path_params.get("v") not in versions:
                # The real front end answers its HTML page; the operations table documents JSON 404s on API
                # routes, so the page's words go into Google's JSON envelope.
                raise ProviderError("not_found", NOT_FOUND_PAGE.format(path=exchange.path), status=404)
            return await handler(exchange)

        return versioned

    # -- who is asking ---------------------------------------------------------------------------------

    @staticmethod
    def is_vertex(exchange: Exchange) -> bool:
        return VERTEX_MARK in exchange.routed_path

    @staticmethod
    def project_mode(exchange: Exchange) -> bool:
        """Vertex AI's project/location form, which takes an OAuth access token (express mode takes a key)."""
        return "project" in exchange.path_params

    def presented_key(self, exchange: Exchange) -> str | None:
        if self.project_mode(exchange):
            return exchange.bearer_token()
        return super().presented_key(exchange)

    def unauthorized(self, exchange: Exchange) -> ProviderError:
        if self.project_mode(exchange):
            return self.wording.refusal("bearer_invalid", **self.values(exchange))
        if exchange.api_key is None:
            return self.wording.refusal("api_key_missing")
        return self.wording.refusal("api_key_invalid", **self.values(exchange))

    def values(self, exchange: Exchange) -> dict[str, Any]:
        """What Google's wording names: service, RPC method, model, version, project."""
        api = self.data["apis"]["vertex" if self.is_vertex(exchange) else "gemini"]
        version = exchange.path_params.get("v", "v1beta")
        package = fill(api["rpcPackage"], {"version": version})
        operation = exchange.operation or ""
        service = "PredictionService" if self.is_vertex(exchange) else "GenerativeService"
        return {"service": api["service"], "rpc_method": f"{package}.{service}.{operation}", "version": version,
                "model": exchange.path_params.get("model", "").removeprefix("models/"),
                "project": exchange.path_params.get("project", ""),
                "location": exchange.path_params.get("location", ""),
                "project_number": PROJECT_NUMBER, "method": operation[:1].lower() + operation[1:]}

    # -- errors ----------------------------------------------------------------------------------------

    def error(self, status: int, message: str, *, code: str | None = None) -> Answer:
        return self.wording.answer(status, message, code)

    def validation_error(self, violations: list[Violation]) -> Answer:
        return self.wording.invalid(violations, "GenerateContentRequest", "v1beta")

    def unreadable_body(self, exchange: Exchange, problem: BodyError) -> ProviderError:
        return self.wording.refusal("invalid_json", detail=str(problem))

    def render_error(self, exchange: Exchange, error: ProviderError) -> Answer:
        if error.kind == INVALID:
            title = self.schemas.document(exchange.schema)["title"] if exchange.schema else "Request"
            return self.wording.invalid(error.violations, str(title), exchange.path_params.get("v", "v1beta"))
        if exchange.operation == UNKNOWN_ROUTE:
            error = self.wording.refusal("method_not_allowed", path=exchange.path)
        html = error.details.get("html")
        if html and self.options["front_end_html_errors"]:
            return Answer.content(html, "text/html", error.status or 404)
        answer = self.wording.answer(error.status or 500, error.message, error.code, error.details.get("details", ()),
                                     error.details.get("legacy", ()))
        return answer.with_headers(error.headers) if error.headers else answer

    def forced(self, exchange: Exchange, do: Mapping[str, Any]) -> ProviderError:
        """A forced error (fault rule, limit, empty wallet) as Google words it (provider.json `faults`)."""
        kind = str(do.get("error"))
        spec = error_spec(self.data["faults"], dict(do))
        values = self.values(exchange)
        by_operation = spec.get("byOperation", {}).get(exchange.operation or "", {})
        condition = by_operation.get("condition") or spec.get("condition")
        if kind == "unauthorized" and self.project_mode(exchange):
            condition = spec["vertexBearer"]["condition"]
        if condition is not None and "status" not in do:
            return self.wording.refusal(condition, **values, file=exchange.path_params.get("file", ""))
        status = int(do["status"]) if "status" in do else int(spec["status"])
        if "statusOption" in spec and "status" not in do:
            status = int(self.options[spec["statusOption"]])
        if spec.get("rateLimit"):
            return self._rate_limited(exchange, do, values)
        message = str(fill(spec["message"], values))
        return ProviderError(kind, message, status=status, code=spec.get("status_name"),
                             details=details(spec.get("details", []), values), html=spec.get("html"))

    def _rate_limited(self, exchange: Exchange, do: Mapping[str, Any], values: dict[str, Any]) -> ProviderError:
        table = self.data["rateLimit"]
        given = do.get("retry_after")
        retry = float(given) if given is not None else DEFAULT_RETRY_SECONDS
        delay = f"{round(retry, 9):.9f}".rstrip("0").rstrip(".")
        model = values["model"] or "gemini-3.1-flash-image"
        quota_id = table["quotaIds"].get(str(do.get("limit_kind", "requests")), table["quotaIds"]["requests"])
        if self.options["free_tier"]:
            quota_id += table["freeTierSuffix"]
        limit = str(do.get("limit", 0))
        entries: list[dict[str, Any]] = [
            {"@type": "QuotaFailure", "violations": [{"quotaMetric": table["metric"], "quotaId": quota_id,
                                                      "quotaDimensions": fill(table["dimensions"], {"model": model}),
                                                      "quotaValue": limit}]},
            {"@type": "Help", "links": table["help"]},
            {"@type": "RetryInfo", "retryDelay": f"{delay}s"},
        ]
        vertex = self.is_vertex(exchange)
        message = table["vertexMessage"] if vertex else fill(
            table["message"], {"metric": table["metric"], "limit": limit, "model": model, "retry": delay})
        legacy = table["vertexLegacyErrors"] if vertex and self.options["vertex_legacy_errors"] else ()
        return ProviderError("rate_limited", str(message), status=429, details=details(entries, {}), legacy=legacy)

    def render_fault(self, exchange: Exchange, do: dict[str, Any]) -> Answer:
        if do.get("error") == "content_blocked" and exchange.operation in GENERATE_OPERATIONS:
            return self._answer_body(exchange, self._blocked_prompt(exchange))
        answer = self.render_error(exchange, self.forced(exchange, do))
        return answer.with_headers(fault_headers(error_spec(self.data["faults"], do), do))

    def _blocked_prompt(self, exchange: Exchange) -> dict[str, Any]:
        """content_blocked on this API: HTTP 200, promptFeedback.blockReason, no candidates."""
        sent = exchange.sent if isinstance(exchange.sent, dict) else {}
        texts = [str(part.get("text", "")) for content in sent.get("contents", []) if isinstance(content, dict)
                 for part in content.get("parts", []) if isinstance(part, dict)]
        tokens = max(1, sum(len(text) for text in texts) // 4)
        body: dict[str, Any] = {
            "promptFeedback": {"blockReason": str(self.options["prompt_block_reason"])},
            "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens,
                              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]},
            "modelVersion": exchange.path_params.get("model", ""),
        }
        return body

    def status_that_counts(self, status: int, body: Any) -> int:
        return status

    # -- generateContent and its stream -------------------------------------------------------------------

    def model(self, exchange: Exchange) -> Model:
        found = find_model(self.data, self.options, exchange.params["model"])
        if found is None:
            vertex = None
            if self.is_vertex(exchange):
                vertex = {"project": exchange.path_params.get("project", "{project}"),
                          "location": exchange.path_params.get("location", "global")}
            values = self.values(exchange)
            raise refuse_unknown(self.wording, exchange.params["model"], values["version"], values["method"], vertex)
        return found

    def ask(self, exchange: Exchange, body: Any, schema: str, *, batch: bool = False,
            model: Model | None = None) -> Ask:
        """A validated request body, normalised, its references read and the model's own rules applied."""
        model = model or self.model(exchange)
        vertex = self.is_vertex(exchange)
        result = normalise(self.schemas, schema, body, vertex=vertex)
        for misfit in result.misfits:
            if misfit.kind == "duplicate" and self.options["duplicate_spellings"] == "reject":
                raise self.wording.refusal("duplicate_field", name=misfit.name, other=misfit.other,
                                           path=proto_path(misfit.path[:-1]))
            if misfit.kind == "vertex_only" and self.options["vertex_fields_on_gemini_api"] == "reject":
                raise self.wording.refusal("vertex_only_field", name=misfit.name, path=proto_path(misfit.path[:-1]))
        request = result.value
        references = [self._reference(part) for content in request.get("contents", [])
                      for part in content.get("parts", []) if "inlineData" in part or "fileData" in part]
        check_image_config(model, self.wording, request.get("generationConfig") or {}, len(references))
        return Ask(model, request, references, vertex=vertex, batch=batch)

    def _reference(self, part: Mapping[str, Any]) -> Reference:
        if "fileData" in part:
            return Reference(self.files.image_size(str(part["fileData"].get("fileUri", ""))))
        blob = part["inlineData"]
        if not str(blob.get("mimeType", "")).startswith("image/"):
            return Reference(None)
        data = str(blob.get("data", "")).replace("-", "+").replace("_", "/")
        try:
            image = decode_image_reference(data + "=" * (-len(data) % 4))
        except InvalidImageReference:
            raise self.wording.refusal("image_unreadable") from None
        return Reference((image.width, image.height) if image.width and image.height else None)

    async def run(self, exchange: Exchange, deadline: float) -> Task:
        """Generate on the clock: the task, once it is over or the server's deadline has passed (a refusal
        before the generation starts is raised)."""
        ask = self.ask(exchange, exchange.body, exchange.schema or "request/generate-content")
        owner = exchange.caller
        task = self.generator.plan(owner, ask)
        exchange.task_id = task.id
        self.charge(exchange, task)
        await self.engine.wait(task, deadline)
        return task

    def charge(self, exchange: Exchange, task: Task) -> None:
        price = self.generator.price(task)
        if price and not self.engine.wallets.debit(self.slug, exchange.caller, price):
            self.engine.cancel(task)
            raise self.forced(exchange, {"error": "insufficient_credits"})
        task.cost = price

    async def finished(self, exchange: Exchange, task: Task) -> dict[str, Any]:
        phase = task.phase(self.engine.now())
        if phase is Phase.SUCCEEDED:
            return await self.responses.answer(task)
        self.engine.wallets.credit(self.slug, task.owner, task.cost)  # nothing is billed for a failed call
        if phase is Phase.FAILED:
            raise self.forced(exchange, {"error": "server_error"})
        if phase is not Phase.EXPIRED:
            self.engine.cancel(task)
        raise self.wording.refusal("deadline")

    async def generate(self, exchange: Exchange) -> Answer:
        task = await self.run(exchange, UNARY_DEADLINE)
        return Answer.json(await self.finished(exchange, task))

    async def stream(self, exchange: Exchange) -> Answer:
        task = await self.run(exchange, STREAM_DEADLINE)
        try:
            body = await self.finished(exchange, task)
        except ProviderError as error:
            # The generation had begun, so the 200 and its headers were out: the error can only be an event of
            # the stream, after which it ends (option stream_errors; the JSON-array form is sent whole).
            if exchange.query.get("alt") != "sse" or self.options["stream_errors"] != "event":
                raise
            return Answer.sse([self.render_error(exchange, error).value])
        return self._answer_body(exchange, body)

    def _answer_body(self, exchange: Exchange, body: dict[str, Any]) -> Answer:
        """A GenerateContentResponse as its operation sends it: JSON, SSE events, or the stream as one array."""
        if exchange.operation != "StreamGenerateContent":
            return Answer.json(body)
        events = stream_events(body, str(self.options["stream_chunks"]))
        if exchange.query.get("alt") == "sse":
            return Answer.sse(events)
        return Answer.json(events)

    async def count_tokens(self, exchange: Exchange) -> Answer:
        body = exchange.body
        request = body.get("generateContentRequest") or body.get("generate_content_request") or body
        ask = self.ask(exchange, {"contents": request.get("contents", [])}, "request/generate-content")
        tokens = prompt_tokens(ask.texts, len(ask.references))
        image_tokens = INPUT_IMAGE_TOKENS * len(ask.references)
        split = (("TEXT", tokens - image_tokens), ("IMAGE", image_tokens))
        details = [{"modality": m, "tokenCount": n} for m, n in split if n]
        return Answer.json({"totalTokens": tokens, "promptTokensDetails": details})

    # -- models ----------------------------------------------------------------------------------------

    def model_resource(self, model: Model) -> dict[str, Any]:
        card = model.card
        return {"name": f"models/{model.id}", "version": model.version, "displayName": model.id,
                "inputTokenLimit": card["inputTokenLimit"], "outputTokenLimit": card["outputTokenLimit"],
                "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
                "thinking": card["thinking"] != "none"}

    async def get_model(self, exchange: Exchange) -> Answer:
        return Answer.json(self.model_resource(self.model(exchange)))

    async def list_models(self, exchange: Exchange) -> Answer:
        found = [find_model(self.data, self.options, name) for name in self.data["models"] if name != "$comment"]
        chosen, following = self.page(exchange, [model for model in found if model is not None])
        body: dict[str, Any] = {"models": [self.model_resource(model) for model in chosen]}
        if following:
            body["nextPageToken"] = following
        return Answer.json(body)

    def page(self, exchange: Exchange, items: list[Any]) -> tuple[list[Any], str | None]:
        """A list method's page: pageSize items (option defaults, clamped to the maximum) from where pageToken
        says, and Google's nextPageToken (None on the last page); a token no listing gave is a 400."""
        size = exchange.params.get("pageSize") or int(self.options["page_size_default"])
        start = position(exchange.params.get("pageToken"))
        if start is None:
            raise self.wording.refusal("invalid_argument")
        return page(items, min(int(size), int(self.options["page_size_max"])), start)

    # -- Imagen :predict (retired) ----------------------------------------------------------------------------

    async def predict(self, exchange: Exchange) -> Answer:
        model_id = exchange.params["model"].removeprefix("models/")
        card = self.data["imagenModels"].get(model_id)
        if card is None or self.options["imagen_predict"] != "legacy":
            raise self.wording.refusal("imagen_retired", **{**self.values(exchange), "model": model_id})
        task, body = await imagen.predict(self.engine, exchange.caller, model_id, card, exchange.body, UNARY_DEADLINE)
        exchange.task_id = task.id
        if not self.engine.wallets.debit(self.slug, exchange.caller, task.cost):
            raise self.forced(exchange, {"error": "insufficient_credits"})
        return Answer.json(body)
