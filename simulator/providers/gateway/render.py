"""Engine state → the values the provider's body templates ask for, as of a clock time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.engine import Failure, Phase, Task
from simulator.providers.gateway.card import RULE_FAILURE_KINDS

if TYPE_CHECKING:
    from simulator.providers.gateway.provider import GatewayProvider

UNFINISHED = "The task did not finish."


class TaskRenderer:
    def __init__(self, provider: GatewayProvider) -> None:
        self.provider = provider
        self.card = provider.card

    def body(self, name: str, task: Task, now: float, *, settled: bool = False) -> Any:
        """Body `name` (create, detail, …) for `task` at `now`; `settled` skips the results-lag rehearsal."""
        return self.card.bodies[name].fill(self.values(task, now, settled=settled))

    def moving(self, task: Task, now: float) -> bool:
        """Whether the task's detail can still change with the clock alone (running, or its results lagging)."""
        lag = float(self.provider.options["results_lag_seconds"])
        return not task.phase(now).terminal or now < task.timeline.finished_at + lag

    def failure(self, task: Task, phase: Phase) -> Failure | None:
        """Why the task reads as failed in `phase`, or None while it has not (or has succeeded).

        A task whose every image was blocked (a `partial_block` covering the whole batch; these gateways
        make one image per task) has nothing to deliver, so it reads as a content-policy failure.
        """
        if phase is Phase.SUCCEEDED:
            blocked = [image for image in task.outputs if image.blocked]
            if task.outputs and len(blocked) == len(task.outputs):
                return Failure("blocked", blocked[0].blocked_reason or "")
            return None
        if phase.terminal:
            return task.failure or Failure("default", UNFINISHED)
        return None

    def values(self, task: Task, now: float, *, settled: bool = False) -> dict[str, Any]:
        phase = task.phase(now)
        failure = self.failure(task, phase)
        shown = Phase.FAILED if failure is not None and phase is Phase.SUCCEEDED else phase
        lag = float(self.provider.options["results_lag_seconds"])
        # The observed race: `completed` is reported a moment before the result links are.
        lagging = shown is Phase.SUCCEEDED and not settled and now < task.timeline.finished_at + lag
        return {
            "id": task.id,
            "created": int(task.timeline.accepted_at),
            "model": task.model,
            "status": self.card.statuses[shown],
            "progress": self._progress(task, shown, now, lagging),
            "results": self._results(task) if shown is Phase.SUCCEEDED and not lagging else None,
            "error": self._error(failure) if failure is not None else None,
            "can_cancel": not phase.terminal,
            "estimated_time": task.extra["estimated_time"],
            "credits_reserved": task.cost,
        }

    def _progress(self, task: Task, phase: Phase, now: float, lagging: bool) -> int:
        if phase is Phase.SUCCEEDED:
            return self.card.lagging_progress if lagging else 100
        if phase.terminal:
            return self.card.failed_progress
        # Integer percent that never claims 100 before the task is done.
        return min(99, int(task.progress(now) * 100))

    def _results(self, task: Task) -> list[Any]:
        """The links of the images that were not blocked: a partly blocked batch has a shorter list."""
        expires_at = task.timeline.finished_at + float(self.provider.options["url_ttl_seconds"])
        base = task.extra["base_url"]
        item = self.card.bodies["result"]
        return [
            item.fill({"url": self.provider.files.url(base, image.blob_id, expires_at)})
            for image in task.outputs if not image.blocked
        ]

    def _error(self, failure: Failure) -> dict[str, Any]:
        """The failed-task `error`: the kind's code, or a fault rule's own `code` with its documented wording."""
        spec = self.card.failures.get(failure.kind) or self.card.failures["default"]
        messages = self.card.failure_messages
        code = failure.code if failure.code and failure.kind in RULE_FAILURE_KINDS else spec["code"]
        kind_text = spec.get("message") or messages[spec["code"]]
        text = kind_text if code == spec["code"] else messages.get(code, kind_text)
        return self.card.bodies["taskError"].fill({
            "code": code, "message": text.replace("{detail}", failure.message or UNFINISHED),
        })
