"""Runware (`POST /v1`, a JSON array of tasks): auth, task dispatch, sync/async delivery, callbacks.

Each task of the array is validated and run on its own (the operations table marks `Tasks` `eachItem`), so
one request can answer with results in `data[]` and failures in `errors[]` (errors page: "errors are scoped
to the specific task that failed, while other tasks in the same request may still succeed").

The same handler answers each frame of Runware's WebSocket API (`exchange.conversation` set): there the
authentication task opens a session (simulator.providers.runware.sessions), a sync task's results are pushed
one frame per image as each is ready instead of held for one answer, and a refused key closes the socket.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from simulator.engine import Delivery, Engine, Phase, Task
from simulator.engine.rng import random_uuid
from simulator.faults.errors import error_spec
from simulator.images import content_type
from simulator.pipeline import Answer, BodyError, Endpoint, Exchange, ProviderError
from simulator.pipeline.body import without_unknown_fields
from simulator.pipeline.conversation import SocketTerms
from simulator.providers.base import Provider
from simulator.providers.runware.errors import ErrorCatalog, TaskError, first_violation
from simulator.providers.runware.faults import (
    flag_instead_of_block,
    forced_items,
    leading_authentication,
    submits,
    tasks_of,
)
from simulator.providers.runware.jobs import SLUG, Job, JobBuilder, job_of
from simulator.providers.runware.render import Renderer
from simulator.providers.runware.sessions import Session, Sessions
from simulator.providers.runware.sizing import plan_size, unit_cost
from simulator.providers.signed_files import SignedFiles
from simulator.validation import Violation

# The path of the real result URLs (https://im.runware.ai/image/ws/2/ii/<imageUUID>.jpg).
IMAGE_PREFIX = "/image/ws/2/ii"
# taskUUIDs are unique across the service, not per API key: the SDKs treat conflictTaskUUID as
# "already submitted", so the key store is not scoped to the owner.
ANY_OWNER = "*"
# A refusal of the whole request, as errors[] items (rendered like any other answer of the array).
TASK_ERRORS = "task_errors"


@dataclass
class Outcome:
    """What one task of the array contributes to the response."""

    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[TaskError] = field(default_factory=list)
    wait_for: Job | None = None  # a sync job: rendered once every image is terminal
    show: Job | None = None  # a getResponse: the job as it stands

    @property
    def job(self) -> Job | None:
        return self.wait_for or self.show


class RunwareProvider(Provider):
    slug: ClassVar[str] = SLUG

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.files = SignedFiles(self, IMAGE_PREFIX)
        self.task_schema = self.item_schema("Tasks")
        self.errors = ErrorCatalog(self.data, self.schemas, self.task_schema)
        self.renderer = Renderer(self.engine, self.files, self.options, self.errors)
        self.sessions = Sessions(self.engine, self.options)
        self.handlers: dict[str, Callable[[Exchange, str, dict[str, Any]], Outcome]] = {
            "imageInference": self._image_inference,
            "getResponse": self._get_response,
            "ping": self._ping,
            "authentication": self._misplaced_authentication,
        }

    def reset(self) -> None:
        super().reset()
        self.sessions.clear()

    def socket_terms(self) -> tuple[str, SocketTerms] | None:
        """`wss://ws-api.runware.ai/v1` carries the same task arrays as `POST /v1` (dossier §2.2)."""
        return "Tasks", SocketTerms(float(self.options["ws_idle_close_seconds"]),
                                    int(self.options["ws_idle_close_code"]), int(self.options["ws_max_frame_bytes"]))

    def routes(self) -> list[Endpoint]:
        return [
            self.route("/v1", self.submit, ["POST"], "Tasks"),
            self.route("/v1/", self.submit, ["POST"], "Tasks"),
            self.files.route(),
        ]

    # -- envelopes -------------------------------------------------------------------------------------

    def _respond(self, data: list[dict[str, Any]], errors: list[TaskError]) -> Answer:
        body: dict[str, Any] = {}
        if data or not errors or self.options["errors_with_empty_data"]:
            body["data"] = data
        if errors:
            body["errors"] = [error.item for error in errors]
        status = 200
        if errors and (not data or self.options["partial_failure_status"] == "first_error"):
            status = errors[0].status
        return Answer.json(body, status)

    def error(self, status: int, message: str, *, code: str | None = None) -> Answer:
        item = {"code": code or self.data["defaultCodes"].get(str(status), "unknownError"), "message": message}
        return self._respond([], [TaskError(status, item)])

    def validation_error(self, violations: list[Violation]) -> Answer:
        return self._respond([], [self.errors.from_violation(first_violation(violations), None)])

    def render_error(self, exchange: Exchange, error: ProviderError) -> Answer:
        if error.kind == TASK_ERRORS:
            return self._respond([], list(error.details["errors"]))
        return super().render_error(exchange, error)

    def _refused(self, error: TaskError) -> ProviderError:
        return ProviderError(TASK_ERRORS, error.item["message"], status=error.status, errors=[error])

    # -- auth ------------------------------------------------------------------------------------------

    def presented_key(self, exchange: Exchange) -> str | None:
        """The key of a leading authentication task, else the transport's credential or the Bearer header."""
        leading = leading_authentication(exchange.sent)
        if leading is None:
            return super().presented_key(exchange)
        key = leading.get("apiKey")
        return key if isinstance(key, str) else None

    def unauthorized(self, exchange: Exchange) -> ProviderError:
        code = "invalidApiKey" if exchange.api_key else "missingApiKey"
        close_code = int(self.options["ws_auth_failure_close_code"])
        if exchange.conversation is not None and close_code:
            exchange.conversation.close(close_code, "authentication failed")
        return self._refused(self.errors.named(code, "authentication", {"taskType": "authentication"},
                                               parameter="apiKey", transport=exchange.transport))

    def unreadable_body(self, exchange: Exchange, problem: BodyError) -> ProviderError:
        return self._refused(self.errors.named("invalidRequestBody", "validation", detail=str(problem),
                                               transport=exchange.transport))

    # -- failure rehearsal -----------------------------------------------------------------------------

    def submits(self, operation: str, body: Any) -> bool:
        """Every request is operation `Tasks`: only one carrying imageInference work is held to a concurrency
        limit, so a getResponse poll is never refused for the generations it polls."""
        return submits(tasks_of(body))

    def render_fault(self, exchange: Exchange, do: dict[str, Any]) -> Answer:
        """A forced error as errors[] items scoped to the request's tasks; status and headers as the base says."""
        generic = super().render_fault(exchange, do)
        spec = error_spec(self.data.get("faults", {}), do)
        if "message" not in do:
            spec["message"] = self.errors.fault_message(str(do.get("error")), exchange.transport, spec["message"])
        if "code" in do:
            code = str(do["code"])
        elif spec.get("codeOption"):
            code = str(self.options[spec["codeOption"]])
        else:
            code = spec.get("code") or self.data["defaultCodes"].get(str(generic.status), "unknownError")
        tasks = tasks_of(exchange.sent)[:int(self.options["max_tasks_per_request"])]
        uuids = [task["taskUUID"] for task in tasks if isinstance(task.get("taskUUID"), str)]
        if uuids:
            exchange.task_id = uuids[0]
        items = forced_items(spec, code, tasks)
        return self._respond([], [TaskError(generic.status, item) for item in items]).with_headers(generic.headers)

    # -- the task array ------------------------------------------------------------------------------

    async def submit(self, exchange: Exchange) -> Answer:
        body = exchange.body
        if not isinstance(body, list) or not body:
            detail = "Got an empty array." if body == [] else f"Got a JSON {_json_type(body)}."
            raise self._refused(self.errors.named("invalidRequestBody", "validation", detail=detail,
                                                  transport=exchange.transport))
        cap = int(self.options["max_tasks_per_request"])
        if len(body) > cap:
            detail = f"It holds {len(body)} tasks; at most {cap} are accepted in one request."
            raise self._refused(self.errors.named("invalidRequestBody", "validation", detail=detail,
                                                  transport=exchange.transport))
        tasks: list[Any] = list(body)
        leading = leading_authentication(body)
        if leading is not None:
            tasks = tasks[1:]
        owner = self.authenticate(exchange)
        data: list[dict[str, Any]] = []
        session = self._session(exchange, owner, leading)
        if session is not None and leading is not None:
            data.append({"taskType": "authentication", "connectionSessionUUID": session.uuid})
        elif leading is not None and self.options["echo_authentication_task"]:
            uuid = random_uuid(self.engine.seeds.stream(SLUG, "session", owner))
            data.append({"taskType": "authentication", "connectionSessionUUID": uuid})
        outcomes = []
        for index, task in enumerate(tasks):
            if index:
                await asyncio.sleep(0)  # one request's tasks must not hold up every other route
            outcomes.append(self._run(exchange, owner, task))
        if session is not None:
            outcomes = self._pushed_later(exchange, session, outcomes)
        await self._settle(outcomes)
        now = self.engine.now()
        if not data:
            kept = self._settled_poll(exchange, outcomes, now)
            if kept is not None:
                return kept
        errors: list[TaskError] = []
        for outcome in outcomes:
            data.extend(outcome.data)
            errors.extend(outcome.errors)
            if outcome.job is not None:
                items, failures = self.renderer.state(outcome.job, now, polled=outcome.show is not None)
                data.extend(items)
                errors.extend(failures)
        return self._respond(data, errors)

    def _settled_poll(self, exchange: Exchange, outcomes: list[Outcome], now: float) -> Answer | None:
        """The answer to a request that only polls one job whose generations have all ended (what the SDKs send
        while they wait), rendered once per state of its images and kept (simulator.pipeline.settled), as every
        provider's read of a finished task is; None for any other request. A job whose images come inline is
        rendered afresh each time: its answer holds every image's bytes, too large to keep."""
        if len(outcomes) != 1:
            return None
        outcome = outcomes[0]
        job = outcome.show
        if job is None or outcome.data or outcome.errors or job.output_types != ["URL"] \
                or not all(image.phase(now).terminal for image in job.images):
            return None
        return self.settled_answer(exchange, job.images[0],
                                   lambda _: self._respond(*self.renderer.state(job, now, polled=True)),
                                   *(image.revision for image in job.images))

    def _session(self, exchange: Exchange, owner: str, leading: dict[str, Any] | None) -> Session | None:
        """On a WebSocket: the session a leading authentication task opens (or resumes), else the socket's own."""
        conversation = exchange.conversation
        if conversation is None:
            return None
        if leading is None:
            return self.sessions.of(conversation)
        _, rng = self.engine.next_rng(SLUG)  # each connection its own session
        session = self.sessions.open(owner, conversation, leading.get("connectionSessionUUID"), rng)
        conversation.credential = owner
        conversation.then(partial(self.sessions.resume, session))
        return session

    def _pushed_later(self, exchange: Exchange, session: Session, outcomes: list[Outcome]) -> list[Outcome]:
        """A sync task on a WebSocket answers one frame per image as each is ready (dossier §2.2, "results arrive
        as they complete"), after this frame's own answer; a frame with nothing else to say sends none."""
        jobs = [outcome.wait_for for outcome in outcomes if outcome.wait_for is not None]
        if not jobs:
            return outcomes
        rest = [outcome for outcome in outcomes if outcome.wait_for is None]
        silent = not any(outcome.data or outcome.errors or outcome.show for outcome in rest)
        if silent:
            exchange.note = "no frame of its own: each result follows in a frame of its own"
        conversation = exchange.conversation
        assert conversation is not None, "a session belongs to a conversation"
        for job in jobs:
            conversation.then(partial(self._push_results, session, job), instead=silent)
            silent = False  # one answer is withheld at most once
        return rest

    async def _push_results(self, session: Session, job: Job) -> None:
        failed = False

        async def push(image: Task) -> None:
            nonlocal failed
            await self._ready(job, image)
            found = self.renderer.image(job, image, self.engine.now(), polled=False)
            if found is None:  # the job failed: its one error, once
                if failed:
                    return
                failed = True
                found = self.renderer.failure(job, image, polled=False)
            answer = self._respond([], [found]) if isinstance(found, TaskError) else self._respond([found], [])
            await self.sessions.send(session, answer, job.task_uuid, min(image.terminal_at(), job.timeout_at))

        await asyncio.gather(*(push(image) for image in job.images))
        if job.deadline is not None:
            job.deadline.cancel()

    def _run(self, exchange: Exchange, owner: str, task: Any) -> Outcome:
        if not isinstance(task, dict):
            return Outcome(errors=[self.errors.named("invalidTask", "validation", detail=f"a JSON {_json_type(task)}")])
        report = self.schemas.validate(self.task_schema, task)
        task, violations = without_unknown_fields(exchange, self.data, self.options, task, report.violations)
        if isinstance(task.get("taskUUID"), str) and exchange.task_id is None:
            exchange.task_id = task["taskUUID"]
        if violations:
            return self._rejected(exchange, task, violations)
        return self.handlers[task["taskType"]](exchange, owner, task)

    def _rejected(self, exchange: Exchange, task: Any, violations: list[Violation]) -> Outcome:
        exchange.violations.extend(v.as_dict() for v in violations)
        return Outcome(errors=[self.errors.from_violation(first_violation(violations), task)])

    async def _settle(self, outcomes: list[Outcome]) -> None:
        """Hold the response until every sync job is done or timed out (on the clock), then encode inline images."""
        jobs = [o.wait_for for o in outcomes if o.wait_for is not None]
        if jobs:
            await asyncio.gather(*(self._ready(job, image) for job in jobs for image in job.images))
        for job in jobs:
            if job.deadline is not None:
                job.deadline.cancel()
        shown = [(o.show, image) for o in outcomes if o.show for image in o.show.images if self._inline(o.show, image)]
        if shown:  # a poll of URLs only (the common one) costs no task and no turn of the event loop
            await asyncio.gather(*(self._encoded(job, image) for job, image in shown))

    async def _ready(self, job: Job, image: Task) -> None:
        """Until the generation is terminal or the sync job timed out (on the clock), its inline bytes encoded."""
        # A finite wait even for a task that never finishes: the job's deadline timer ends it by then.
        await self.engine.wait(image, max(0.0, min(image.terminal_at(), job.timeout_at) - self.engine.now()))
        await self._encoded(job, image)

    async def _encoded(self, job: Job, image: Task) -> None:
        if self._inline(job, image):
            # Encoding a 4K placeholder takes a fraction of a second: keep it off the event loop.
            await asyncio.to_thread(self.renderer.image_bytes, image)

    def _inline(self, job: Job, image: Task) -> bool:
        """Whether the image's bytes go in the answer (and must be encoded first)."""
        return job.output_types != ["URL"] and image.phase(self.engine.now()) is Phase.SUCCEEDED \
            and not self.renderer.withheld(image)

    # -- task types ------------------------------------------------------------------------------------

    def _ping(self, exchange: Exchange, owner: str, task: dict[str, Any]) -> Outcome:
        return Outcome(data=[{"taskType": "ping", "pong": True}])

    def _misplaced_authentication(self, exchange: Exchange, owner: str, task: dict[str, Any]) -> Outcome:
        return Outcome(errors=[self.errors.named("invalidTaskOrder", "validation", task, parameter="taskType")])

    def _get_response(self, exchange: Exchange, owner: str, task: dict[str, Any]) -> Outcome:
        found = self.engine.tasks.by_key(SLUG, ANY_OWNER, task["taskUUID"])
        job = job_of(found) if found is not None else None
        if job is None or job.owner != owner:
            error = self.errors.named("taskFailedOrNotFound", "notFound", task, parameter="taskUUID",
                                      task_uuid=task["taskUUID"])
            return Outcome(errors=[error])
        return Outcome(show=job)

    def _image_inference(self, exchange: Exchange, owner: str, task: dict[str, Any]) -> Outcome:
        task = self.schemas.with_defaults(self.task_schema, task)
        card = self.data["models"][task["model"]]
        plan = plan_size(task, card, self.options)
        if isinstance(plan, list):
            return self._rejected(exchange, task, plan)
        refused = self.callback_violations(("webhookURL",), task.get("webhookURL"))
        if refused:
            return self._rejected(exchange, task, refused)
        task_uuid = task["taskUUID"]
        if self.engine.tasks.by_key(SLUG, ANY_OWNER, task_uuid) is not None:
            # The documented idempotent replay (conflictTaskUUID): refused, but not a broken contract, so it is
            # noted in the journal rather than listed among the request's violations.
            duplicate = Violation(("taskUUID",), "duplicate", "taskUUID already in use", task_uuid)
            exchange.note = f"taskUUID {task_uuid} replayed: answered conflictTaskUUID"
            return Outcome(errors=[self.errors.from_violation(duplicate, task)])
        cost = unit_cost(task, card, plan, float(self.options["search_surcharge_usd"]))
        total = round(cost * int(task["numberResults"]), 5)
        wallets = self.engine.wallets
        if not wallets.debit(self.slug, owner, total):
            balance = wallets.balance(self.slug, owner)
            exchange.note = f"insufficient credits: cost {total}, balance {balance}"
            error = self.errors.named(self.options["insufficient_credits_code"], "credits", task,
                                      template="insufficientCredits", cost=f"{total:.5f}", balance=f"{balance:.5f}")
            return Outcome(errors=[error])
        job, images = JobBuilder(self.engine, self.data["models"]).build(owner, task, plan, exchange.base_url, cost)
        for image in images:
            self.engine.add_task(image)
        if self.options["partial_block_style"] == "nsfw_flag" and job.flags_content():
            flag_instead_of_block(job)
        self.engine.tasks.remember_key(SLUG, ANY_OWNER, task_uuid, images[0].id)
        if task["deliveryMethod"] == "async":
            return Outcome(data=[self.renderer.pending(job, polled=False)])
        job.timeout_at = self.engine.now() + float(self.options["sync_timeout_seconds"])
        # The timer holds the job weakly: the job holds the timer, and the pair would be a cycle.
        job.deadline = self.engine.clock.call_at(job.timeout_at, partial(self._time_out, weakref.ref(job)))
        return Outcome(wait_for=job)

    def _time_out(self, held: weakref.ref[Job]) -> None:
        """The sync timeout: generations still running fail with timeoutProvider (shown on getResponse too)."""
        job = held()
        if job is None:
            return
        now = self.engine.now()
        for image in job.images:
            if not image.phase(now).terminal:
                image.faults.append("sync timeout")
                self.engine.cancel(image)

    # -- callbacks -------------------------------------------------------------------------------------

    def _post(self, job: Job, event: str, payload: dict[str, Any]) -> None:
        policy = self.retry_policy("webhook_retry_delays", "webhook_timeout_seconds")
        self.engine.webhooks.enqueue(Delivery(
            stream=f"{SLUG}:{job.task_uuid}:webhook", url=job.request["webhookURL"], payload=payload,
            provider=self.slug, event=event, task_id=job.task_uuid, policy=policy,
        ))

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        job = job_of(task)
        if job is None or not phase.terminal:
            return
        if phase is Phase.SUCCEEDED and not self.renderer.withheld(task):
            self._delivered(job, task)
            return
        # A generation that is blocked, fails or times out is not charged.
        self.engine.wallets.credit(self.slug, job.owner, job.unit_cost, task_id=task.id)
        if not job.request.get("webhookURL") or self.options["webhook_failures"] != "error_item":
            return
        if phase is Phase.SUCCEEDED:  # one image blocked among the results: its own error, as it completes
            self._post(job, "imageInference:error", self.renderer.blocked_image(job, task, polled=False).item)
        elif not job.failure_posted:
            job.failure_posted = True
            self._post(job, "imageInference:error", self.renderer.failure(job, task, polled=False).item)

    def _delivered(self, job: Job, task: Task) -> None:
        if job.request.get("webhookURL"):
            self._post(job, "imageInference:success", self.renderer.result(job, task, polled=False))
        if job.request.get("uploadEndpoint"):
            image = task.outputs[0]
            self.engine.webhooks.enqueue(Delivery(
                stream=f"{SLUG}:{task.id}:upload", url=job.request["uploadEndpoint"], payload=None,
                provider=self.slug, event="upload", task_id=job.task_uuid,
                policy=self.retry_policy("upload_retry_delays", "webhook_timeout_seconds"), method="PUT",
                content=self.renderer.image_bytes(task), content_type=content_type(image.format),
            ))


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")
