"""Jobs: several tasks run as one long-running operation (a Batch), whose phase is read off the clock.

A job waits in its queue until `starts`, then its tasks run (each on its own timeline, accepted at `starts`);
it succeeds when the last one ends and at least one succeeded, fails when none did, expires when it is still
unfinished at `expires`, and is canceled by `Engine.cancel_job`. A provider only maps the phase to its own
words and draws its envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.engine.tasks import Phase, Task


@dataclass
class Job:
    id: str
    provider: str
    owner: str
    created: float
    starts: float
    expires: float
    tasks: list[Task] = field(default_factory=list)  # members refused before they could run are not here
    canceled_at: float | None = None
    detail: Any = None  # the provider's own record of the job (its requests, its results file …)

    def ended(self) -> float:
        """When the last task finished (inf while one never does)."""
        return max((task.terminal_at() for task in self.tasks), default=self.starts)

    def phase(self, now: float) -> tuple[Phase, float | None]:
        """The job's phase and, once it is terminal, when it became so."""
        if self.canceled_at is not None:
            return Phase.CANCELED, self.canceled_at
        if now < self.starts:
            return Phase.QUEUED, None
        ended = self.ended()
        if ended <= now:
            succeeded = any(task.phase(now) is Phase.SUCCEEDED for task in self.tasks)
            return (Phase.SUCCEEDED if succeeded else Phase.FAILED), ended
        if now >= self.expires:
            return Phase.EXPIRED, self.expires
        return Phase.PROCESSING, None
