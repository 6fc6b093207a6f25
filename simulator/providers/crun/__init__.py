"""CRun (crun.ai) unified task API, Nano Banana models (seed 003)."""

from simulator.providers.crun.provider import CrunProvider

__all__ = ["CrunProvider"]
