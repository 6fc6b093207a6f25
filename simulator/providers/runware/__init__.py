"""Runware REST task API, imageInference for the Google Nano Banana models (seed 002)."""

from simulator.providers.runware.provider import RunwareProvider

__all__ = ["RunwareProvider"]
