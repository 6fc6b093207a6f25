"""Civitai Orchestration v2 (`/v2/consumer/...`), engine `google`: routes, auth, errors, callbacks."""

from __future__ import annotations

import base64
import json
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from simulator import json_patch
from simulator.engine import Delivery, Phase, RetryPolicy, Task
from simulator.faults.errors import error_spec
from simulator.formats import parse_iso_utc
from simulator.http.context import BodyError, context, public_base, query_flag, query_int, read_json
from simulator.http.images import LinkState, check_link, image_response
from simulator.images import InvalidImageReference, decode_image_reference
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
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
WORKFLOWS = "/v2/consumer/workflows"
DETAIL_STEP_FIELDS = ("name", "status", "startedAt", "completedAt", "metadata", "input", "output")
BLOBS = "/v2/consumer/blobs"
MAX_TAGS = 10
INT32 = 2**31
# What ASP.NET's JSON input formatter accepts; anything else is refused rather than guessed at.
JSON_MEDIA_TYPES = {"application/json", "text/json"}


class CivitaiProvider(Provider):
    slug: ClassVar[str] = "civitai"

    def routes(self) -> list[BaseRoute]:
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
            # HeadBlob first: Starlette lets a GET route answer HEAD too, which would redirect instead of 204.
            r(BLOBS + "/{blob_id}", self.head_blob, ["HEAD"], "HeadBlob"),
            r(BLOBS + "/{blob_id}", self.get_blob, ["GET"], "GetBlob"),
            r(BLOBS + "/{blob_id}/refresh", self.refresh_blob, ["POST"], "RefreshBlob"),
        ]

    @property
    def builder(self) -> WorkflowBuilder:
        return WorkflowBuilder(self.engine, self.data["models"], self.options)

    # -- error envelopes ---------------------------------------------------------------------------

    def _problem(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
        known = self.data["problems"].get(str(status), {})
        problem = {
            "type": known.get("type", "about:blank"),
            "title": known.get("title") or _reason_phrase(status),
            "status": status,
            **body,
            "traceId": trace_id(self.engine.seed, len(self.engine.journal) + 1),
        }
        return JSONResponse(problem, status_code=status, media_type=PROBLEM, headers=headers)

    def error(self, status: int, message: str, *, code: str | None = None) -> Response:
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        return self._problem(status, {"detail": message}, headers)

    def _validation_problem(self, errors: dict[str, list[str]]) -> Response:
        return self._problem(400, {"title": "One or more validation errors occurred.", "errors": errors})

    def validation_error(self, violations: list[Violation]) -> Response:
        errors: dict[str, list[str]] = {}
        for violation in violations:
            message = render_message(self.data["messages"], violation)
            errors.setdefault(dotted_path(violation.path) or "$", []).append(message)
        return self._validation_problem(errors)

    def _insufficient_buzz(self, message: str, status: int | None = None) -> Response:
        """The spec types SubmitWorkflow's 403 as a bare JSON string; Civitai's app reads a 403 as "no funds"."""
        return JSONResponse(message, status_code=status or int(self.options["insufficient_buzz_status"]))

    def fault_response(self, request: Request, do: dict[str, Any]) -> Response:
        """Forced errors whose documented body is not a ProblemDetails with `detail` (provider.json `faults`):
        a ValidationProblemDetails (`errorsKey`) or SubmitWorkflow's bare JSON string (`plainStringOn`).
        The base builds the response first, so its headers (Retry-After, the table's own) carry over."""
        response = super().fault_response(request, do)
        spec = error_spec(self.data["faults"], do)
        operation = context(request).get("operation")
        plain_on = spec.get("plainStringOn") or []
        if "*" in plain_on or operation in plain_on:
            # Unless the rule says otherwise, a forced empty wallet answers like a real one.
            same_as_wallet = do.get("error") == "insufficient_credits" and "status" not in do
            status = None if same_as_wallet else response.status_code
            shaped = self._insufficient_buzz(str(spec["message"]), status)
        elif "errorsKey" in spec and response.status_code == 400:
            shaped = self._validation_problem({str(spec["errorsKey"]): [str(spec["message"])]})
        else:
            return response
        for name, value in response.headers.items():
            if name not in ("content-type", "content-length"):
                shaped.headers[name] = value
        return shaped

    def _field_error(self, request: Request, key: str, message: str, rule: str, value: Any = None) -> Response:
        return self.reject(request, [Violation((key,), rule, message, value)])

    def _unauthorized(self) -> Response:
        return self.error(401, self.data["faults"]["unauthorized"]["message"])

    def _not_found(self, what: str) -> Response:
        return self.error(404, f"{what} was not found.")

    # -- helpers -------------------------------------------------------------------------------------

    def _view(self, request: Request | None, task: Task | None = None) -> View:
        base = public_base(request) if request is not None else (task.extra["base_url"] if task else "")
        return View(self.engine, base, float(self.options["url_ttl_seconds"]))

    def _owned(self, request: Request, owner: str) -> Task | None:
        task = self.engine.tasks.get(request.path_params["workflow_id"])
        if task is None or task.provider != self.slug or task.owner != owner or task.deleted_at is not None:
            return None
        if task.extra["workflow"]["ephemeral"] and task.phase(self.engine.now()).terminal:
            return None  # ephemeral workflows are gone once terminal
        context(request)["task_id"] = task.id
        return task

    def _bad_parameter(self, request: Request, name: str) -> Response:
        """ASP.NET model binding's refusal of a query value that is not of the parameter's type."""
        raw = request.query_params.get(name)
        return self._field_error(request, name, f"The value '{raw}' is not valid for {name}.", "parameter", raw)

    def _int_parameter(self, request: Request, name: str, default: int) -> int | Response:
        value = query_int(request, name, default)
        if value is None or not -INT32 <= value < INT32:  # Int32 parameters in the OpenAPI document
            return self._bad_parameter(request, name)
        return value

    def _flag_parameters(self, request: Request, *names: str) -> dict[str, bool] | Response:
        flags: dict[str, bool] = {}
        for name in names:
            value = query_flag(request, name)
            if value is None:
                return self._bad_parameter(request, name)
            flags[name] = value
        return flags

    def _workflow_of(self, request: Request) -> Task | Response:
        """The caller's workflow named in the path, or the 401 / 404 the caller gets instead."""
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        task = self._owned(request, owner)
        return self._not_found("The workflow") if task is None else task

    def _wait_seconds(self, request: Request) -> int | Response:
        wait = self._int_parameter(request, "wait", 0)
        if isinstance(wait, Response):
            return wait
        return max(0, min(wait, int(self.options["wait_cap_seconds"])))

    async def _json_body(self, request: Request) -> Any:
        """The body read the way ASP.NET's System.Text.Json reads it, or the 400 that refuses it."""
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type and not (media_type in JSON_MEDIA_TYPES or media_type.endswith("+json")):
            message = f"The content type '{media_type}' is not supported; send the body as application/json."
            return self._field_error(request, "$", message, "contentType", media_type)
        try:
            return await read_json(request, int(self.options["max_json_depth"]))
        except BodyError as exc:
            if exc.path:  # a value Python parsed but .NET would not: keyed where it sits
                return self.reject(request, [Violation(exc.path, exc.rule, str(exc))])
            message = f"{exc} Path: $ | LineNumber: {exc.line} | BytePositionInLine: {exc.column}."
            return self._field_error(request, "$", message, exc.rule)

    async def _valid_body(self, request: Request, schema: str) -> Any:
        """The JSON body if it satisfies `schema`, else the 400 that refuses it."""
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        report = self.schemas.validate(schema, body)
        return body if report.ok else self.reject(request, report.violations)

    def _workflow_response(self, request: Request, task: Task, status: int | None = None) -> Response:
        body = render_workflow(self._view(request), task)
        if status is None:
            terminal = task.phase(self.engine.now()).terminal
            status = 200 if terminal else int(self.options["in_progress_status"])
        return JSONResponse(body, status_code=status)

    # -- workflows ---------------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        wait = self._wait_seconds(request)
        if isinstance(wait, Response):
            return wait
        flags = self._flag_parameters(request, "whatif", "hideMatureContent")
        if isinstance(flags, Response):
            return flags
        whatif = flags["whatif"]
        body = await self._valid_body(request, "request/workflow-template")
        if isinstance(body, Response):
            return body
        template = self.schemas.with_defaults("request/workflow-template", body)
        problems = self._semantic_violations(template, wait)
        if problems:
            return self.reject(request, problems)
        external_id = template.get("externalId")
        if external_id:
            existing = self.engine.tasks.by_key(self.slug, owner, external_id)
            if existing is not None and existing.deleted_at is None:
                context(request)["task_id"] = existing.id
                context(request)["note"] = "externalId matched an existing workflow"
                await self.engine.wait(existing, wait)
                return self._workflow_response(request, existing)
        task = self.builder.build(owner, template, public_base(request), whatif=whatif)
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
            return JSONResponse(render_workflow(self._view(request), task), headers=headers)
        if not wallets.debit(self.slug, owner, task.cost):
            balance = wallets.balance(self.slug, owner)
            context(request)["note"] = f"insufficient Buzz: cost {task.cost}, balance {balance}"
            return self._insufficient_buzz(
                f"Insufficient Buzz: the workflow costs {int(task.cost)} Buzz and the account holds {int(balance)}."
            )
        self.engine.add_task(task)
        if external_id:
            self.engine.tasks.remember_key(self.slug, owner, external_id, task.id)
        context(request)["task_id"] = task.id
        await self.engine.wait(task, wait)
        return self._workflow_response(request, task)

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
            url = urlsplit(callback["url"])
            loopback = url.hostname in LOOPBACK_HOSTS or (url.hostname or "").startswith("127.")
            allowed = bool(url.hostname) and (url.scheme == "https" or (
                url.scheme == "http" and loopback and self.options["allow_http_callbacks_to_loopback"]
            ))
            if not allowed:
                out.append(Violation(("callbacks", c, "url"), "callbackUrl",
                                     "Callback URLs must be absolute HTTPS URLs.", callback["url"], "https://…"))
        if template.get("ephemeral") and not template.get("callbacks") and wait <= 0:
            out.append(Violation(("ephemeral",), "ephemeral",
                                 "An ephemeral workflow needs at least one callback or a wait greater than 0.",
                                 True, "callbacks or wait"))
        return out

    async def get_workflow(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        wait = self._wait_seconds(request)
        if isinstance(wait, Response):
            return wait
        flags = self._flag_parameters(request, "hideMatureContent")
        if isinstance(flags, Response):
            return flags
        task = self._owned(request, owner)
        if task is None:
            return self._not_found("The workflow")
        await self.engine.wait(task, wait)
        return self._workflow_response(request, task)

    async def query(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        q = request.query_params
        take = self._int_parameter(request, "take", 100)
        if isinstance(take, Response):
            return take
        if take < 1:
            return self._bad_parameter(request, "take")
        flags = self._flag_parameters(request, "ascending", "excludeFailed", "hideMatureContent")
        if isinstance(flags, Response):
            return flags
        ascending, exclude_failed = flags["ascending"], flags["excludeFailed"]
        bounds: dict[str, float | None] = {}
        for name in ("fromDate", "toDate"):
            bounds[name] = parse_iso_utc(q[name]) if q.get(name) else None
            if q.get(name) and bounds[name] is None:
                return self._bad_parameter(request, name)
        since, until = bounds["fromDate"], bounds["toDate"]
        wanted_tags = set(q.getlist("tags"))
        text = q.get("query")
        cursor = _decode_cursor(q.get("cursor"))
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
        view = self._view(request)
        next_cursor = _encode_cursor(page[-1].seq) if len(found) > take else None
        return JSONResponse({"next": next_cursor, "items": [render_workflow(view, t) for t in page]})

    async def update_workflow(self, request: Request) -> Response:
        task = self._workflow_of(request)
        if isinstance(task, Response):
            return task
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        return self._update_workflow(request, task, body)

    async def patch_workflow(self, request: Request) -> Response:
        """JSON Patch over what PUT can change ("cancel a workflow, update metadata and add additional tags")."""
        task = self._workflow_of(request)
        if isinstance(task, Response):
            return task
        workflow = task.extra["workflow"]
        updatable = {"status": None, "metadata": workflow.get("metadata"), "tags": list(task.tags),
                     "allowMatureContent": workflow.get("allowMatureContent")}
        patched = await self._patched(request, updatable)
        if isinstance(patched, Response):
            return patched
        if isinstance(patched, dict) and patched.get("status") is None:
            patched.pop("status", None)  # unchanged: only "canceled" can be written
        return self._update_workflow(request, task, patched)

    async def _patched(self, request: Request, target: dict[str, Any]) -> Any:
        """`target` with the request's JSON Patch applied, or the 400 that refuses the patch (nothing applied)."""
        body = await self._valid_body(request, "request/json-patch")
        if isinstance(body, Response):
            return body
        try:
            return json_patch.apply(target, body)
        except json_patch.PatchError as exc:
            return self._field_error(request, f"[{exc.index}]", str(exc), "jsonPatch", body[exc.index])

    def _update_workflow(self, request: Request, task: Task, body: Any) -> Response:
        report = self.schemas.validate("request/update-workflow", body)
        tags = list(dict.fromkeys(body.get("tags") or [])) if report.ok else []
        if len(tags) > MAX_TAGS:  # WorkflowTemplate's limit holds for replaced tags too; checked before any change
            report.violations.append(Violation(("tags",), "maxItems", "too many tags", tags, MAX_TAGS, MAX_TAGS))
        if not report.ok:
            return self.reject(request, report.violations)
        if body.get("status") == "canceled":
            self._cancel(task)
        if body.get("metadata") is not None:
            task.extra["workflow"]["metadata"] = body["metadata"]
        if body.get("tags") is not None:
            task.tags = tags
        if "allowMatureContent" in body:
            task.extra["workflow"]["allowMatureContent"] = body["allowMatureContent"]
        return Response(status_code=204)

    def _cancel(self, task: Task) -> None:
        """Cancel; work that had not started yet is refunded as a credit transaction."""
        now = self.engine.now()
        not_started = task.phase(now) in (Phase.ACCEPTED, Phase.QUEUED)
        if self.engine.cancel(task) and not_started and task.cost:
            self.engine.wallets.credit(self.slug, task.owner, task.cost)
            debit = task.extra["transactions"][0]
            task.extra["transactions"].append({
                "type": "credit", "amount": debit["amount"], "id": f"{debit['id']}-refund",
                "accountType": debit["accountType"],
            })

    async def delete_workflow(self, request: Request) -> Response:
        task = self._workflow_of(request)
        if isinstance(task, Response):
            return task
        self._cancel(task)
        task.deleted_at = self.engine.now()
        return Response(status_code=204)

    async def add_tag(self, request: Request) -> Response:
        task = self._workflow_of(request)
        if isinstance(task, Response):
            return task
        tag = await self._json_body(request)
        if isinstance(tag, Response):
            return tag
        report = self.schemas.validate("request/workflow-tag", tag)
        if not report.ok:
            return self.reject(request, report.violations)
        if tag not in task.tags:
            if len(task.tags) >= MAX_TAGS:
                return self._field_error(request, "tags", "At most 10 tags can be assigned to a workflow.",
                                         "maxItems", tag)
            task.tags.append(tag)
        return Response(status_code=204)

    async def remove_all_tags(self, request: Request) -> Response:
        task = self._workflow_of(request)
        if isinstance(task, Response):
            return task
        task.tags.clear()
        return Response(status_code=204)

    async def remove_tag(self, request: Request) -> Response:
        task = self._workflow_of(request)
        if isinstance(task, Response):
            return task
        tag = request.path_params["tag"]
        if tag in task.tags:
            task.tags.remove(tag)
        return Response(status_code=204)

    def _step_index(self, task: Task, name: str) -> int | None:
        for index, step in enumerate(task.extra["steps"]):
            if step["name"] == name:
                return index
        return None

    def _step_of(self, request: Request) -> tuple[Task, int] | Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        task = self._owned(request, owner)
        index = None if task is None else self._step_index(task, request.path_params["step_name"])
        if task is None or index is None:
            return self._not_found("The workflow step")
        return task, index

    async def get_step(self, request: Request) -> Response:
        found = self._step_of(request)
        if isinstance(found, Response):
            return found
        task, index = found
        return JSONResponse(render_step(self._view(request), task, index))

    async def update_step(self, request: Request) -> Response:
        found = self._step_of(request)
        if isinstance(found, Response):
            return found
        task, index = found
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        return self._update_step(request, task, index, body)

    async def patch_step(self, request: Request) -> Response:
        found = self._step_of(request)
        if isinstance(found, Response):
            return found
        task, index = found
        patched = await self._patched(request, {"metadata": task.extra["steps"][index].get("metadata") or {}})
        if isinstance(patched, Response):
            return patched
        return self._update_step(request, task, index, patched)

    def _update_step(self, request: Request, task: Task, index: int, body: Any) -> Response:
        report = self.schemas.validate("request/update-step", body)
        if not report.ok:
            return self.reject(request, report.violations)
        task.extra["steps"][index]["metadata"] = body["metadata"] or {}
        return Response(status_code=204)

    # -- blobs ---------------------------------------------------------------------------------------

    def _blob_access(self, request: Request) -> tuple[Any, Response | None]:
        """The blob, if the signed link is valid or the bearer token owns it; else the refusal."""
        blob_id = request.path_params["blob_id"]
        blob = self.engine.blobs.get(blob_id)
        signature, expires = request.query_params.get("sig"), request.query_params.get("exp")
        if signature is not None or expires is not None:
            expires_at = parse_iso_utc(expires or "")
            state = check_link(self.engine, BLOB_PATH.format(blob_id=blob_id), expires or "",
                               expires_at or 0.0, signature or "")
            if state is LinkState.TAMPERED:
                return None, self.error(403, "The blob URL signature is invalid.")
            if state is LinkState.EXPIRED:
                return None, self.error(403, "The blob URL has expired; fetch the workflow again or refresh the blob.")
        else:
            owner = self.authenticate(request)
            if owner is None:
                return None, self._unauthorized()
            if blob is not None and blob.task.owner != owner:
                blob = None
        if blob is None or blob.task.provider != self.slug:
            return None, self._not_found("The blob")
        context(request)["task_id"] = blob.task.id
        step = next(s for s in blob.task.extra["steps"] if blob.image.index in s["outputs"])
        phase = step_phase(blob.task, step, self.engine.now())
        if is_blocked(blob.image, step, phase):
            reason = blob.image.blocked_reason or step["blockedReason"]
            return None, self.error(403, f"The blob is blocked: {reason}")
        if phase is not Phase.SUCCEEDED:
            return None, self._not_found("The blob (it is not available yet)")
        return blob, None

    async def get_blob(self, request: Request) -> Response:
        blob, refusal = self._blob_access(request)
        if refusal is not None:
            return refusal
        ttl = float(self.options["url_ttl_seconds"])
        claims = {"b": blob.id, "e": round(self.engine.now() + ttl, 3)}
        if query_flag(request, "download") is True:
            claims["d"] = request.query_params.get("filename", "")
        payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
        token = f"{payload}.{self.engine.signer.signature('content', payload)}"
        prefix = context(request).get("prefix", "")
        status = int(self.options["blob_redirect_status"])
        return RedirectResponse(f"{prefix}{BLOBS}/content/{token}", status_code=status)

    async def head_blob(self, request: Request) -> Response:
        _, refusal = self._blob_access(request)
        return refusal if refusal is not None else Response(status_code=204)

    async def refresh_blob(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        blob, refusal = self._blob_access(request)
        if refusal is not None:
            return refusal
        step = next(s for s in blob.task.extra["steps"] if blob.image.index in s["outputs"])
        body = render_image(self._view(request), blob.task, blob.image, step, Phase.SUCCEEDED)
        return JSONResponse(body)

    async def blob_content(self, request: Request) -> Response:
        payload, _, signature = request.path_params["token"].partition(".")
        if not self.engine.signer.verify("content", payload, signature):
            return self.error(403, "The content token is invalid.")
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, json.JSONDecodeError):
            return self.error(403, "The content token is invalid.")
        if self.engine.now() >= float(claims["e"]):
            return self.error(403, "The content URL has expired.")
        blob = self.engine.blobs.get(claims["b"])
        if blob is None:
            return self._not_found("The blob")
        context(request)["task_id"] = blob.task.id
        return image_response(self.engine, blob, request, download_name=claims.get("d"))

    # -- callbacks -----------------------------------------------------------------------------------

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        callbacks = task.extra["workflow"]["callbacks"]
        if not callbacks or phase is Phase.QUEUED:
            return  # no callback event type exists for `scheduled`
        view = self._view(None, task)
        policy = RetryPolicy(
            tuple(float(d) for d in self.options["callback_retry_delays"]),
            float(self.options["callback_timeout_seconds"]),
        )
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
