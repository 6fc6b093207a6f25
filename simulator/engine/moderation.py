"""The simulated content filter: prompt patterns that block a task, set over the control plane or by scenarios."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import re2

from simulator import checks
from simulator.engine.tasks import Failure
from simulator.faults import tasks as task_faults

__all__ = ["BLOCK_TRIGGER", "Moderation"]

# The documented prompt trigger: a prompt containing it is blocked by the simulated content filter.
BLOCK_TRIGGER = "[sim:block]"


class Moderation:
    """Simulated content filter: prompt patterns that block, matched case-insensitively anywhere in the prompt.

    Patterns are RE2 regular expressions (the `google-re2` bindings), compiled when they are set: RE2 matches
    in time linear in the prompt, whatever the pattern, so no pattern can hang the server the way `(a+)+$`
    hangs a backtracking engine (a prompt is read once per pattern). What RE2 leaves out by design
    (backreferences, lookaround) is refused when set, as is any pattern that does not compile, naming the
    pattern's place in the list and RE2's reason.
    """

    MAX_PATTERNS = 200
    MAX_LENGTH = 2000

    def __init__(self, patterns: list[str] | None = None) -> None:
        self._compiled: list[tuple[str, Any]] = []
        self.set([re.escape(BLOCK_TRIGGER)] if patterns is None else patterns)

    @property
    def patterns(self) -> list[str]:
        return [source for source, _ in self._compiled]

    @patterns.setter
    def patterns(self, patterns: list[str]) -> None:
        self.set(patterns)

    def set(self, patterns: Any, field: str = "patterns") -> None:
        """Compile every pattern first; a bad one leaves the filter as it was."""
        self._compiled = self.compile(patterns, field)

    @classmethod
    def compile(cls, patterns: Any, field: str = "patterns", in_force: int = 0) -> list[tuple[str, Any]]:
        """Each pattern compiled, or a refusal naming it; `in_force` patterns already count towards the bound."""
        checks.items(patterns, field, max_items=cls.MAX_PATTERNS - in_force,
                     what="a list of regular expressions (RE2 syntax)")
        compiled = []
        for i, pattern in enumerate(patterns):
            where = checks.join(field, i)
            checks.text(pattern, where, max_length=cls.MAX_LENGTH, empty=False)
            try:
                compiled.append((pattern, re2.compile(pattern, _RE2_OPTIONS)))
            except re2.error as exc:
                reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) \
                    else str(exc)
                raise checks.refuse(where, f"{checks.quote(pattern)} is not an RE2 regular expression: {reason} "
                                           "(RE2 has no backreferences or lookaround)") from None
        return compiled

    def verdict(self, prompt: str) -> Failure | None:
        forced = task_faults.forced_block()
        if forced is not None:
            return forced
        folded = prompt.lower() if prompt.isascii() else None
        # RE2 reads UTF-8: a lone surrogate (which JSON can carry) is matched as '?'.
        text = prompt if folded is not None else prompt.encode("utf-8", "replace").decode("utf-8")
        for source, pattern in self._compiled:
            literal = _literal(source)
            # A plain string (the default trigger) in an ASCII prompt: a substring test decides as RE2 would,
            # without the bindings' per-call cost (a tenth of a submit's time).
            found = literal in folded if literal is not None and folded is not None else pattern.search(text)
            if found:
                return Failure("blocked", "The prompt was blocked by the content filter.", code=source)
        return None


_META = frozenset(".^$*+?()[]{}|\\")


@lru_cache(maxsize=256)
def _literal(pattern: str) -> str | None:
    """The lower-case ASCII text a pattern matches literally (`\\[sim:block\\]` → `[sim:block]`), else None."""
    out, escaped = [], False
    for char in pattern:
        if escaped:
            if char.isalnum():
                return None  # \d, \w, \b…: a class or an assertion, not a character
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in _META:
            return None
        else:
            out.append(char)
    text = "".join(out)
    return text.lower() if not escaped and text.isascii() and text else None


def _re2_options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # a refused pattern is the caller's 400, not a line on the server's stderr
    return options


_RE2_OPTIONS = _re2_options()
