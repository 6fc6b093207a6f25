"""The verdict on each rehearsal and the scorecard printed at the end of the run."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.pytest_plugin.rehearsals.evidence import Check
from simulator.pytest_plugin.rehearsals.files import Rehearsal

OUTCOME_SHOWN = 90  # characters of a passing rehearsal's outcome on its scorecard line


@dataclass
class Verdict:
    rehearsal: Rehearsal
    slug: str
    where: str  # the node the rehearsal hung from: whose adapter it ran
    status: str  # passed / failed / skipped
    checks: list[Check] = field(default_factory=list)
    reason: str = ""  # why it was skipped
    seconds: float = 0.0  # real time it took

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def report(self) -> str:
        """The failing item's message: what went wrong, each with its journal excerpt."""
        lines = [f"rehearsal {self.slug}/{self.rehearsal.name} failed: {self.rehearsal.title}"]
        for check in self.failed:
            lines.append(f"  ✗ {check.name}: {check.message}")
            lines += [f"      {line}" for line in check.excerpt]
        passed = [check for check in self.checks if check.ok]
        lines += [f"  ✓ {check.name}: {check.message}" for check in passed]
        return "\n".join(lines)


@dataclass
class Scorecard:
    verdicts: list[Verdict] = field(default_factory=list)

    def render(self) -> list[str]:
        lines: list[str] = []
        groups: dict[tuple[str, str], list[Verdict]] = {}
        for verdict in self.verdicts:
            groups.setdefault((verdict.slug, verdict.where), []).append(verdict)
        width = max((len(v.rehearsal.name) for v in self.verdicts), default=0) + 2
        for (slug, where), verdicts in groups.items():
            counts = {s: sum(1 for v in verdicts if v.status == s) for s in ("passed", "failed", "skipped")}
            seconds = sum(v.seconds for v in verdicts)
            lines.append(f"{slug} · adapter in {where or '(root)'} · {counts['passed']} passed, {counts['failed']} "
                         f"failed, {counts['skipped']} not applicable or skipped · {seconds:.1f} s")
            for verdict in verdicts:
                label = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[verdict.status]
                lines.append(f"  {label}  {verdict.rehearsal.name:<{width}}{verdict.rehearsal.title}")
                if verdict.status == "skipped":
                    lines.append(f"        {verdict.reason}")
                elif verdict.status == "passed":
                    seen = "; ".join(c.message for c in verdict.checks if c.name != "outcome")
                    outcome = next((c.message for c in verdict.checks if c.name == "outcome"), "")
                    outcome = outcome if len(outcome) <= OUTCOME_SHOWN else outcome[: OUTCOME_SHOWN - 1] + "…"
                    lines.append(f"        {seen} ({outcome})" if seen else f"        {outcome}")
                else:
                    for check in verdict.failed:
                        lines.append(f"        ✗ {check.name}: {check.message}")
                        lines += [f"            {line}" for line in check.excerpt]
        return lines
