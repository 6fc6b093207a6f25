"""Engine state → the values the provider's body templates ask for, as of a clock time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.engine import Phase, Task

if TYPE_CHECKING:
    from simulator.providers.gateway.provider import GatewayProvider


class TaskRenderer:
    def __init__(self, provider: GatewayProvider) -> None:
        self.provider = provider
        self.card = provider.card

    def body(self, name: str, task: Task, now: float, *, settled: bool = False) -> Any:
        """Body `name` (create, detail, …) for `task` at `now`; `settled` skips the results-lag rehearsal."""
        return self.card.bodies[name].fill(self.values(task, now, settled=settled))

    def values(self, task: Task, now: float, *, settled: bool = False) -> dict[str, Any]:
        phase = task.phase(now)
        lag = float(self.provider.options["results_lag_seconds"])
        # The observed race: `completed` is reported a moment before the result links are.
        lagging = phase is Phase.SUCCEEDED and not settled and now < task.timeline.finished_at + lag
        return {
            "id": task.id,
            "created": int(task.timeline.accepted_at),
            "model": task.model,
            "status": self.card.statuses[phase],
            "progress": self._progress(task, phase, now, lagging),
            "results": self._results(task) if phase is Phase.SUCCEEDED and not lagging else None,
            "error": self._error(task) if phase.terminal and phase is not Phase.SUCCEEDED else None,
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
        expires_at = task.timeline.finished_at + float(self.provider.options["url_ttl_seconds"])
        base = task.extra["base_url"]
        item = self.card.bodies["result"]
        return [item.fill({"url": self.provider.files.url(base, image.blob_id, expires_at)}) for image in task.outputs]

    def _error(self, task: Task) -> dict[str, Any]:
        failure = task.failure
        kind = failure.kind if failure is not None else "default"
        spec = self.card.failures.get(kind) or self.card.failures["default"]
        detail = failure.message if failure is not None else "The task did not finish."
        return self.card.bodies["taskError"].fill({
            "code": spec["code"], "message": spec["message"].replace("{detail}", detail),
        })
