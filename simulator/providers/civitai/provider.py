"""Civitai Orchestration v2 (`/v2/consumer/...`), engine `google`: handlers, errors, callbacks."""

from __future__ import annotations

import base64
import json
from http import HTTPStatus
from typing import Any, ClassVar

from simulator import json_patch
from simulator.engine import Delivery, Phase, Task
from simulator.engine.webhooks import callback_refusal
from simulator.faults.errors import error_spec
from simulator.formats import parse_iso_utc
from simulator.http.images import LinkState, check_link, image_response
from simulator.images import InvalidImageReference, decode_image_reference
from simulator.pipeline import Answer, BodyError, Endpoint, Exchange, ProviderError
from simulator.pipeline.settled import Late
from simulator.providers.base import Provider
from simulator.providers.civitai.render import (
    BLOB_PATH,
    STATUS,
    View,
    is_blocked,
    job_reason,
    render_image,
    render_step,
    render_workflow,
    step_phase,
    timestamp,
    trace_id,
)
from simulator.providers.civitai.workflows import WorkflowBuilder
from simulator.validation import Violation, dotted_path, render_message

PROBLEM = "application/problem+json"
WORKFLOWS = "/v2/consumer/workflows"
DETAIL_STEP_FIELDS = ("name", "status", "startedAt", "completedAt", "metadata", "input", "output")
BLOBS = "/v2/consumer/blobs"
# What ASP.NET's JSON input formatter accepts; anything else is refused rather than guessed at.
JSON_MEDIA_TYPES = {"application/json", "text/json"}
INSUFFICIENT_BUZZ = "insufficient_buzz"


class CivitaiProvider(Provider):
    slug: ClassVar[str] = "civitai"

    def routes(self) -> list[Endpoint]:
        r = self.route
        return [
            r(WORKFLOWS, self.submit, ["POST"], "SubmitWorkflow"),
            r(WORKFLOWS, self.query, ["GET"], "QueryWorkflows"),
            r(WORKFLOWS + "/{workflow_id}", self.get_workflow, ["GET"], "GetWorkflow"),
            r(WORKFLOWS + "/{workflow_id}", self.update_workflow, ["PUT"], "UpdateWorkflow"),
            r(WORKFLOWS + "/{workflow_id}", self.patch_workflow, ["PATCH"], "PatchWorkflow"),
            r(WORKFLOWS + "/{workflow_id}", self.delete_workflow, ["DELETE"], "DeleteWorkflow"),
            r(WORKFLOWS + "/{workflow_id}/tags", self.add_tag, ["POST"], "AddWorkflowTag"),
            r(WORKFLOWS + "/{workflow_id}/tags", self.remove_all_tags, ["DELETE"], "RemoveAllWorkflowTags"),
            r(WORKFLOWS + "/{workflow_id}/tags/{tag}", self.remove_tag, ["DELETE"], "RemoveWorkflowTag"),
            r(WORKFLOWS + "/{workflow_id}/steps/{step_name}", self.get_step, ["GET"], "GetWorkflowStep"),
            r(WORKFLOWS + "/{workflow_id}/steps/{step_name}", self.update_step, ["PUT"], "UpdateWorkflowStep"),
            r(WORKFLOWS + "/{workflow_id}/steps/{step_name}", self.patch_step, ["PATCH"], "PatchWorkflowStep"),
            r(BLOBS + "/content/{token}", self.blob_content, ["GET", "HEAD"], "GetBlobContent"),
            # HeadBlob first: a GET endpoint answers HEAD too, which would redirect instead of 204.
            r(BLOBS + "/{blob_id}", self.head_blob, ["HEAD"], "HeadBlob"),
            r(BLOBS + "/{blob_id}", self.get_blob, ["GET"], "GetBlob"),
            r(BLOBS + "/{blob_id}/refresh", self.refresh_blob, ["POST"], "RefreshBlob"),
        ]

    @property
    def builder(self) -> WorkflowBuilder:
        return WorkflowBuilder(self.engine, self.data["models"], self.options, self.workflow_defaults)

    @property
    def workflow_defaults(self) -> dict[str, Any]:
        """What a workflow keeps of its template, with the template schema's defaults (tags and steps aside)."""
        return self._template_properties({"steps", "tags"})

    @property
    def max_tags(self) -> int:
        """WorkflowTemplate's tag limit, which holds for tags added or replaced later too."""
        return int(self._template_schema()["properties"]["tags"]["maxItems"])

    def _template_schema(self) -> dict[str, Any]:
        name = self.operations["SubmitWorkflow"].request_schema(self.options)
        assert name is not None
        return self.schemas.document(name)

    def _template_properties(self, leave_out: set[str]) -> dict[str, Any]:
        return {name: spec.get("default") for name, spec in self._template_schema()["properties"].items()
                if name not in leave_out}

    # -- error envelopes ---------------------------------------------------------------------------

    def _problem(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
        known = self.data["problems"].get(str(status), {})
        problem = {
            "type": known.get("type", "about:blank"),
            "title": known.get("title") or _reason_phrase(status),
            "status": status,
            **body,
            "traceId": trace_id(self.engine.seed, len(self.engine.journal) + 1),
        }
        return Answer.json(problem, status, media_type=PROBLEM, headers=headers)

    def error(self, status: int, message: str, *, code: str | None = None) -> Answer:
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        return self._problem(status, {"detail": message}, headers)

    def _validation_problem(self, errors: dict[str, list[str]]) -> Answer:
        return self._problem(400, {"title": "One or more validation errors occurred.", "errors": errors})

    def validation_error(self, violations: list[Violation]) -> Answer:
        errors: dict[str, list[str]] = {}
        for violation in violations:
            message = render_message(self.data["messages"], violation)
            errors.setdefault(dotted_path(violation.path) or "$", []).append(message)
        return self._validation_problem(errors)

    def _insufficient_buzz(self, message: str, status: int | None = None) -> Answer:
        """The spec types SubmitWorkflow's 403 as a bare JSON string; Civitai's app reads a 403 as "no funds"."""
        return Answer.json(message, status or int(self.options["insufficient_buzz_status"]))

    def render_error(self, exchange: Exchange, error: ProviderError) -> Answer:
        if error.kind == INSUFFICIENT_BUZZ:
            return self._insufficient_buzz(error.message)
        return super().render_error(exchange, error)

    def render_fault(self, exchange: Exchange, do: dict[str, Any]) -> Answer:
        """Forced errors whose documented body is not a ProblemDetails with `detail` (provider.json `faults`):
        a ValidationProblemDetails (`errorsKey`) or SubmitWorkflow's bare JSON string (`plainStringOn`).
        The base builds the answer first, so its headers (Retry-After, the table's own) carry over."""
        answer = super().render_fault(exchange, do)
        spec = error_spec(self.data["faults"], do)
        plain_on = spec.get("plainStringOn") or []
        if "*" in plain_on or exchange.operation in plain_on:
            # Unless the rule says otherwise, a forced empty wallet answers like a real one.
            same_as_wallet = do.get("error") == "insufficient_credits" and "status" not in do
            shaped = self._insufficient_buzz(str(spec["message"]), None if same_as_wallet else answer.status)
        elif "errorsKey" in spec and answer.status == 400:
            shaped = self._validation_problem({str(spec["errorsKey"]): [str(spec["message"])]})
        else:
            return answer
        return shaped.with_headers(answer.headers)

    @staticmethod
    def _field_error(key: str, message: str, rule: str, value: Any = None) -> ProviderError:
        return ProviderError.invalid([Violation((key,), rule, message, value)])

    @staticmethod
    def _not_found(what: str) -> ProviderError:
        return ProviderError("not_found", f"{what} was not found.", status=404)

    # -- reading requests the ASP.NET way -------------------------------------------------------------

    def refuse_media_type(self, exchange: Exchange) -> ProviderError | None:
        media_type = exchange.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type and not (media_type in JSON_MEDIA_TYPES or media_type.endswith("+json")):
            message = f"The content type '{media_type}' is not supported; send the body as application/json."
            return self._field_error("$", message, "contentType", media_type)
        return None

    @property
    def json_depth(self) -> int:
        return int(self.options["max_json_depth"])

    def unreadable_body(self, exchange: Exchange, problem: BodyError) -> ProviderError:
        """What System.Text.Json says of the body: keyed where the bad value sits, else by line and byte."""
        if problem.path:
            return ProviderError.invalid([Violation(problem.path, problem.rule, str(problem))])
        message = f"{problem} Path: $ | LineNumber: {problem.line} | BytePositionInLine: {problem.column}."
        return self._field_error("$", message, problem.rule)

    # -- helpers -------------------------------------------------------------------------------------

    def _view(self, base_url: str, late: Late | None = None) -> View:
        return View(self.engine, base_url, float(self.options["url_ttl_seconds"]), late)

    def _owned(self, exchange: Exchange) -> Task | None:
        task = self.engine.tasks.get(exchange.params["workflow_id"])
        if task is None or task.provider != self.slug or task.owner != exchange.owner or task.deleted_at is not None:
            return None
        if task.extra["workflow"]["ephemeral"] and task.phase(self.engine.now()).terminal:
            return None  # ephemeral workflows are gone once terminal
        exchange.task_id = task.id
        return task

    def _workflow_of(self, exchange: Exchange) -> Task:
        """The caller's workflow named in the path, or the 404 the caller gets instead."""
        task = self._owned(exchange)
        if task is None:
            raise self._not_found("The workflow")
        return task

    def _wait_seconds(self, exchange: Exchange) -> int:
        return max(0, min(int(exchange.params["wait"]), int(self.options["wait_cap_seconds"])))

    def _workflow_answer(self, exchange: Exchange, task: Task) -> Answer:
        if not task.phase(self.engine.now()).terminal:
            body = render_workflow(self._view(exchange.base_url), task)
            return Answer.json(body, int(self.options["in_progress_status"]))
        # Finished: the same workflow on every read but for its links, signed from the moment of each read.
        return self.settled_answer(exchange, task, lambda late: Answer.json(
            render_workflow(self._view(exchange.base_url, late), task)))

    # -- workflows ---------------------------------------------------------------------------------

    async def submit(self, exchange: Exchange) -> Answer:
        owner, wait, whatif = exchange.caller, self._wait_seconds(exchange), exchange.params["whatif"]
        template = self.with_defaults(exchange, exchange.body)
        problems = self._semantic_violations(template, wait)
        if problems:
            raise ProviderError.invalid(problems)
        external_id = template.get("externalId")
        if external_id:
            existing = self.engine.tasks.by_key(self.slug, owner, external_id)
            if existing is not None and existing.deleted_at is None:
                exchange.task_id = existing.id
                exchange.note = "externalId matched an existing workflow"
                await self.engine.wait(existing, wait)
                return self._workflow_answer(exchange, existing)
        task = self.builder.build(owner, template, exchange.base_url, whatif=whatif)
        wallets = self.engine.wallets
        if whatif:
            insufficient = not wallets.can_pay(self.slug, owner, task.cost)
            task.extra["insufficientBuzz"] = insufficient
            account = task.extra["transactions"][0]["accountType"]
            headers = {
                "x-civitai-cost-total": str(int(task.cost)),
                "x-civitai-cost-by-currency": f"{account}={int(task.cost)}",
                "x-civitai-insufficient-buzz": str(insufficient).lower(),
            }
            return Answer.json(render_workflow(self._view(exchange.base_url), task), headers=headers)
        if not wallets.debit(self.slug, owner, task.cost):
            balance = wallets.balance(self.slug, owner)
            exchange.note = f"insufficient Buzz: cost {task.cost}, balance {balance}"
            raise ProviderError(INSUFFICIENT_BUZZ, f"Insufficient Buzz: the workflow costs {int(task.cost)} Buzz "
                                                   f"and the account holds {int(balance)}.")
        self.engine.add_task(task)
        if external_id:
            self.engine.tasks.remember_key(self.slug, owner, external_id, task.id)
        exchange.task_id = task.id
        await self.engine.wait(task, wait)
        return self._workflow_answer(exchange, task)

    def _semantic_violations(self, template: dict[str, Any], wait: int) -> list[Violation]:
        """Rules the JSON Schema cannot say: real images in edit mode, HTTPS callbacks, ephemeral needs."""
        out: list[Violation] = []
        for s, step in enumerate(template["steps"]):
            for i, reference in enumerate(step["input"].get("images") or []):
                try:
                    decode_image_reference(reference)
                except InvalidImageReference as exc:
                    path = ("steps", s, "input", "images", i)
                    out.append(Violation(path, "image", str(exc), reference, "a URL, a data URL or Base64 image"))
        for c, callback in enumerate(template.get("callbacks") or []):
            url = callback["url"]
            problem = callback_refusal(url, https_only=True,
                                       loopback=self.options["allow_http_callbacks_to_loopback"])
            if problem is not None:
                message = ("Callback URLs must be absolute HTTPS URLs." if "HTTPS" in problem
                           else f"Callback URLs {problem}.")
                out.append(Violation(("callbacks", c, "url"), "callbackUrl", message, url, "https://…"))
        if template.get("ephemeral") and not template.get("callbacks") and wait <= 0:
            out.append(Violation(("ephemeral",), "ephemeral",
                                 "An ephemeral workflow needs at least one callback or a wait greater than 0.",
                                 True, "callbacks or wait"))
        return out

    async def get_workflow(self, exchange: Exchange) -> Answer:
        wait = self._wait_seconds(exchange)
        task = self._workflow_of(exchange)
        await self.engine.wait(task, wait)
        return self._workflow_answer(exchange, task)

    async def query(self, exchange: Exchange) -> Answer:
        params, owner = exchange.params, exchange.owner
        ascending, exclude_failed = bool(params["ascending"]), params["excludeFailed"]
        since, until = params["fromDate"], params["toDate"]
        wanted_tags, text, take = set(params["tags"]), params["query"], params["take"]
        cursor = _decode_cursor(params["cursor"])
        now = self.engine.now()
        found = [
            t for t in self.engine.tasks.all(self.slug)
            if t.owner == owner and t.deleted_at is None and not t.extra["workflow"]["ephemeral"]
            and wanted_tags <= set(t.tags)
            and not (exclude_failed and t.phase(now) in (Phase.FAILED, Phase.EXPIRED, Phase.CANCELED))
            and (text is None or text in json.dumps(t.extra["workflow"]["metadata"]))
            and (since is None or t.timeline.accepted_at >= since)
            and (until is None or t.timeline.accepted_at <= until)
        ]
        found.sort(key=lambda t: t.seq, reverse=not ascending)
        if cursor is not None:
            found = [t for t in found if (t.seq > cursor if ascending else t.seq < cursor)]
        page = found[:take]
        view = self._view(exchange.base_url)
        next_cursor = _encode_cursor(page[-1].seq) if len(found) > take else None
        return Answer.json({"next": next_cursor, "items": [render_workflow(view, t) for t in page]})

    async def update_workflow(self, exchange: Exchange) -> Answer:
        return self._update_workflow(exchange, self._workflow_of(exchange), exchange.body)

    async def patch_workflow(self, exchange: Exchange) -> Answer:
        """JSON Patch over what PUT can change ("cancel a workflow, update metadata and add additional tags")."""
        task = self._workflow_of(exchange)
        workflow = task.extra["workflow"]
        updatable = {"status": None, "metadata": workflow.get("metadata"), "tags": list(task.tags),
                     "allowMatureContent": workflow.get("allowMatureContent")}
        patched = self._patched(exchange, updatable)
        if isinstance(patched, dict) and patched.get("status") is None:
            patched.pop("status", None)  # unchanged: only "canceled" can be written
        report = self.validate_as("UpdateWorkflow", patched)
        if not report.ok:
            raise ProviderError.invalid(report.violations)
        return self._update_workflow(exchange, task, patched)

    @staticmethod
    def _patched(exchange: Exchange, target: dict[str, Any]) -> Any:
        """`target` with the request's JSON Patch applied, or the 400 that refuses the patch (nothing applied)."""
        try:
            return json_patch.apply(target, exchange.body)
        except json_patch.PatchError as exc:
            raise CivitaiProvider._field_error(f"[{exc.index}]", str(exc), "jsonPatch", exchange.body[exc.index]) \
                from None

    def _update_workflow(self, exchange: Exchange, task: Task, body: Any) -> Answer:
        """A valid update applied (its tags deduplicated and held to the template's limit before any change)."""
        tags = list(dict.fromkeys(body.get("tags") or []))
        if len(tags) > self.max_tags:
            raise ProviderError.invalid([Violation(("tags",), "maxItems", "too many tags", tags, self.max_tags,
                                                   self.max_tags)])
        if body.get("status") == "canceled":
            self._cancel(task)
        if body.get("metadata") is not None:
            task.extra["workflow"]["metadata"] = body["metadata"]
        if body.get("tags") is not None:
            task.tags = tags
        if "allowMatureContent" in body:
            task.extra["workflow"]["allowMatureContent"] = body["allowMatureContent"]
        task.touch()
        return Answer.empty()

    def _cancel(self, task: Task) -> None:
        """Cancel; work that had not started yet is refunded as a credit transaction."""
        now = self.engine.now()
        not_started = task.phase(now) in (Phase.ACCEPTED, Phase.QUEUED)
        if self.engine.cancel(task) and not_started and task.cost:
            self.engine.wallets.credit(self.slug, task.owner, task.cost, task_id=task.id)
            debit = task.extra["transactions"][0]
            task.extra["transactions"].append({
                "type": "credit", "amount": debit["amount"], "id": f"{debit['id']}-refund",
                "accountType": debit["accountType"],
            })
            task.touch()

    async def delete_workflow(self, exchange: Exchange) -> Answer:
        task = self._workflow_of(exchange)
        self._cancel(task)
        task.deleted_at = self.engine.now()
        task.touch()
        return Answer.empty()

    async def add_tag(self, exchange: Exchange) -> Answer:
        task, tag = self._workflow_of(exchange), exchange.body
        if tag not in task.tags:
            if len(task.tags) >= self.max_tags:
                raise self._field_error("tags", f"At most {self.max_tags} tags can be assigned to a workflow.",
                                        "maxItems", tag)
            task.tags.append(tag)
            task.touch()
        return Answer.empty()

    async def remove_all_tags(self, exchange: Exchange) -> Answer:
        task = self._workflow_of(exchange)
        task.tags.clear()
        task.touch()
        return Answer.empty()

    async def remove_tag(self, exchange: Exchange) -> Answer:
        task, tag = self._workflow_of(exchange), exchange.params["tag"]
        if tag in task.tags:
            task.tags.remove(tag)
            task.touch()
        return Answer.empty()

    def _step_of(self, exchange: Exchange) -> tuple[Task, int]:
        task = self._owned(exchange)
        name = exchange.params["step_name"]
        index = None if task is None else next(
            (i for i, step in enumerate(task.extra["steps"]) if step["name"] == name), None)
        if task is None or index is None:
            raise self._not_found("The workflow step")
        return task, index

    async def get_step(self, exchange: Exchange) -> Answer:
        task, index = self._step_of(exchange)
        return Answer.json(render_step(self._view(exchange.base_url), task, index))

    async def update_step(self, exchange: Exchange) -> Answer:
        task, index = self._step_of(exchange)
        return self._update_step(task, index, exchange.body)

    async def patch_step(self, exchange: Exchange) -> Answer:
        task, index = self._step_of(exchange)
        patched = self._patched(exchange, {"metadata": task.extra["steps"][index].get("metadata") or {}})
        report = self.validate_as("UpdateWorkflowStep", patched)
        if not report.ok:
            raise ProviderError.invalid(report.violations)
        return self._update_step(task, index, patched)

    @staticmethod
    def _update_step(task: Task, index: int, body: Any) -> Answer:
        task.extra["steps"][index]["metadata"] = body["metadata"] or {}
        task.touch()
        return Answer.empty()

    # -- blobs ---------------------------------------------------------------------------------------

    def _blob_access(self, exchange: Exchange) -> Any:
        """The blob, if the signed link is valid or the caller's key owns it; else the refusal."""
        blob_id = exchange.params["blob_id"]
        blob = self.engine.blobs.get(blob_id)
        signature, expires = exchange.params["sig"], exchange.params["exp"]
        if signature is not None or expires is not None:
            expires_at = parse_iso_utc(expires or "")
            state = check_link(self.engine, BLOB_PATH.format(blob_id=blob_id), expires or "",
                               expires_at or 0.0, signature or "")
            if state is LinkState.TAMPERED:
                raise ProviderError("forbidden", "The blob URL signature is invalid.", status=403)
            if state is LinkState.EXPIRED:
                raise ProviderError("forbidden", "The blob URL has expired; fetch the workflow again or refresh "
                                                 "the blob.", status=403)
        else:
            owner = self.authenticate(exchange)
            if blob is not None and blob.task.owner != owner:
                blob = None
        if blob is None or blob.task.provider != self.slug:
            raise self._not_found("The blob")
        exchange.task_id = blob.task.id
        step = next(s for s in blob.task.extra["steps"] if blob.image.index in s["outputs"])
        phase = step_phase(blob.task, step, self.engine.now())
        if is_blocked(blob.image, step, phase):
            reason = blob.image.blocked_reason or step["blockedReason"]
            raise ProviderError("forbidden", f"The blob is blocked: {reason}", status=403)
        if phase is not Phase.SUCCEEDED:
            raise self._not_found("The blob (it is not available yet)")
        return blob

    async def get_blob(self, exchange: Exchange) -> Answer:
        blob = self._blob_access(exchange)
        ttl = float(self.options["url_ttl_seconds"])
        claims = {"b": blob.id, "e": round(self.engine.now() + ttl, 3)}
        if exchange.params["download"] is True:
            claims["d"] = exchange.params["filename"] or ""
        payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
        token = f"{payload}.{self.engine.signer.signature('content', payload)}"
        status = int(self.options["blob_redirect_status"])
        return Answer.redirect(f"{exchange.prefix}{BLOBS}/content/{token}", status)

    async def head_blob(self, exchange: Exchange) -> Answer:
        self._blob_access(exchange)
        return Answer.empty()

    async def refresh_blob(self, exchange: Exchange) -> Answer:
        blob = self._blob_access(exchange)
        step = next(s for s in blob.task.extra["steps"] if blob.image.index in s["outputs"])
        body = render_image(self._view(exchange.base_url), blob.task, blob.image, step, Phase.SUCCEEDED)
        return Answer.json(body)

    async def blob_content(self, exchange: Exchange) -> Answer:
        payload, _, signature = exchange.params["token"].partition(".")
        if not self.engine.signer.verify("content", payload, signature):
            raise ProviderError("forbidden", "The content token is invalid.", status=403)
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, json.JSONDecodeError):
            raise ProviderError("forbidden", "The content token is invalid.", status=403) from None
        if self.engine.now() >= float(claims["e"]):
            raise ProviderError("forbidden", "The content URL has expired.", status=403)
        blob = self.engine.blobs.get(claims["b"])
        if blob is None:
            raise self._not_found("The blob")
        exchange.task_id = blob.task.id
        return await image_response(self.engine, blob, exchange, download_name=claims.get("d"))

    # -- callbacks -----------------------------------------------------------------------------------

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        callbacks = task.extra["workflow"]["callbacks"]
        if not callbacks or phase is Phase.QUEUED:
            return  # no callback event type exists for `scheduled`
        view = self._view(task.extra["base_url"])
        policy = self.retry_policy()
        for callback in callbacks:
            for event, payload in self._events(view, task, phase, at, callback):
                self.engine.webhooks.enqueue(Delivery(
                    stream=f"civitai:{task.id}:{callback['url']}", url=callback["url"], payload=payload,
                    provider=self.slug, event=event, task_id=task.id, policy=policy,
                ))

    def _events(
        self, view: View, task: Task, phase: Phase, at: float, callback: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        types = set(callback["type"])
        detailed = bool(callback.get("detailed"))
        stamp = timestamp(at)
        status = STATUS[phase]
        events: list[tuple[str, dict[str, Any]]] = []

        def wanted(kind: str, state: str) -> bool:
            return f"{kind}:*" in types or f"{kind}:{state}" in types

        if wanted("workflow", status):
            payload: dict[str, Any] = {"$type": "workflow", "workflowId": task.id, "status": status, "timestamp": stamp}
            if detailed:
                payload["details"] = _workflow_details(view, task)
            events.append((f"workflow:{status}", payload))
        for index, step in enumerate(task.extra["steps"]):
            step_at = step_phase(task, step, at) if phase.terminal else phase
            step_status = STATUS[step_at]
            if wanted("step", step_status):
                step_payload: dict[str, Any] = {
                    "$type": "step", "workflowId": task.id, "name": step["name"], "status": step_status,
                }
                if detailed:
                    rendered = render_step(view, task, index)
                    step_payload["details"] = {
                        key: rendered.get(key)
                        for key in ("startedAt", "completedAt", "estimatedProgressRate", "metadata", "input", "output")
                    } | {"retries": 0}
                events.append((f"step:{step_status}", step_payload))
            if wanted("job", step_status):
                reason = job_reason(task, step, step_at)
                events.append((f"job:{step_status}", {
                    "$type": "job", "workflowId": task.id, "stepName": step["name"], "jobId": step["jobId"],
                    "status": step_status, "progress": round(task.progress(at), 4),
                    "reason": reason,
                    "blockedReason": step["blockedReason"] if reason == "blocked" else None,
                    "matureContent": False,
                }))
        return events


def _workflow_details(view: View, task: Task) -> dict[str, Any]:
    rendered = render_workflow(view, task)
    return {
        "createdAt": rendered["createdAt"],
        "startedAt": rendered["startedAt"],
        "completedAt": rendered["completedAt"],
        "metadata": rendered["metadata"],
        "arguments": rendered["arguments"],
        "steps": [
            {key: step.get(key) for key in DETAIL_STEP_FIELDS} | {"cost": task.extra["cost"]["total"]}
            for step in rendered["steps"]
        ],
    }


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().removeprefix("seq:"))
    except ValueError:
        return None
