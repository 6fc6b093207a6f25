"""FoxAPI / AIHubMax "task-unified" gateway, Nano Banana 2 and Pro (seed 004)."""

from simulator.providers.foxapi.provider import FoxapiProvider

__all__ = ["FoxapiProvider"]
