"""Provider conformance: what each simulated provider must answer, as data, and the runner that checks it.

A case file (`contracts/providers/<slug>.yaml`) lists the documented requests and behaviours one provider
must show: each case names its doc reference, sets the simulator up through the control plane (wallet,
faults, options, clock), sends one request or a sequence of steps (submit → advance → poll → terminal), and
says what must come back: the status, a response JSON Schema of `schemas/<slug>/response/`, key fields by
dotted path, headers, the route the journal resolved, and for refused requests the violated fields.

Modules: `cases` (the files and their format), `matchers` (the expectation language), `runner` (running a
case against a simulator, live or in-process).
"""

from simulator.conformance.cases import Case, CaseFileError, iter_operations, load_cases, load_file
from simulator.conformance.matchers import lookup, match, split_path
from simulator.conformance.runner import Outcome, Target, run_case, run_cases

__all__ = [
    "Case", "CaseFileError", "Outcome", "Target", "iter_operations", "load_cases", "load_file", "lookup", "match",
    "run_case", "run_cases", "split_path",
]
