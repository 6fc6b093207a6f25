"""Civitai Orchestration v2, engine `google` (seed 000)."""

from simulator.providers.civitai.provider import CivitaiProvider

__all__ = ["CivitaiProvider"]
