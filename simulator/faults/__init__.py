"""Failure rehearsal: fault plans matched per request and rendered by each provider in its own format."""

from simulator.faults.plan import FaultPlan, PlanError, RequestFacts, Rule, lookup

__all__ = ["FaultPlan", "PlanError", "RequestFacts", "Rule", "lookup"]
