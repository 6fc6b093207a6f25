"""Engine state → CRun's wire format: the TaskInfo `data` object (also the callback body), as of a clock time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulator.engine import Engine, Phase, Task
from simulator.formats import unix_seconds
from simulator.providers.crun.tasks import Ledger, outcome
from simulator.providers.signed_files import SignedFiles

# CRun has four status words. No cancel route exists; an expired task (fault `expire`) is a failed one.
STATUS = {
    Phase.ACCEPTED: "pending",
    Phase.QUEUED: "pending",
    Phase.PROCESSING: "running",
    Phase.SUCCEEDED: "success",
    Phase.FAILED: "failed",
    Phase.CANCELED: "failed",
    Phase.EXPIRED: "failed",
}
RESULT_OK = 200


def number(value: float) -> int | float:
    """Credits as CRun prints them: `3`, `1.5` (a float that happens to be whole prints without `.0`)."""
    return int(value) if float(value).is_integer() else round(float(value), 4)


@dataclass(frozen=True)
class View:
    engine: Engine
    files: SignedFiles
    base_url: str
    media_ttl: float
    messages: Mapping[str, str]
    failures: Mapping[str, Any]

    def task(self, task: Task, now: float | None = None) -> dict[str, Any]:
        now = self.engine.now() if now is None else now
        phase = outcome(task, task.phase(now))
        created = int(task.timeline.accepted_at)
        completed_at = task.completed(now)
        completed = unix_seconds(completed_at)
        return {
            "task_id": task.id,
            "provider": task.extra["provider"],
            "model_version": task.extra["model_version"],
            "status": STATUS[phase],
            "param": task.extra["param"],
            "create_at": created,
            "result": self._result(task, phase, completed_at),
            "credits": number(Ledger.credits(task)),
            "duration_s": None if completed is None else completed - created,
            "complete_at": completed,
            "source": "api",
        }

    def _result(self, task: Task, phase: Phase, completed_at: float | None) -> dict[str, Any] | None:
        if not phase.terminal or completed_at is None:
            return None
        if phase is not Phase.SUCCEEDED:
            code, message = self._failure(task)
            return {"code": code, "message": message, "media_urls": []}
        # The CDN link is fixed at completion and lives `media_ttl` seconds from then, not from each read.
        expires_at = completed_at + self.media_ttl
        urls = [self.files.url(self.base_url, image.blob_id, expires_at) for image in task.outputs if not image.blocked]
        return {"code": RESULT_OK, "message": self.messages["success"], "media_urls": urls}

    def _failure(self, task: Task) -> tuple[int, str]:
        """`result.code` and `result.message` of a failed task (provider.json `taskFailures`).

        No failure record means every image was blocked after generation: that reads as a block too.
        """
        failure, table = task.failure, self.failures
        if failure is None or failure.kind == "blocked":  # a block's `code` names the moderation pattern
            code, reason = int(table["defaultCode"]["blocked"]), str(table["blockedReason"])
        else:
            default = int(table["defaultCode"].get(failure.kind, table["defaultCode"]["error"]))
            code, reason = _documented_code(failure.code, table["codes"]) or default, clause(failure.message)
        return code, str(table["messages"][str(code)]).format(reason=reason)


def _documented_code(code: str | int | None, documented: list[int]) -> int | None:
    """A fault rule's `code` (500 or "500" from YAML) if CRun documents it for a failed task, else None."""
    try:
        value = int(str(code))
    except ValueError:
        return None
    return value if value in documented else None


def clause(sentence: str) -> str:
    """'The task expired.' → 'the task expired', to follow CRun's 'Generation failed: ' (acronyms keep case)."""
    text = sentence.strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text
