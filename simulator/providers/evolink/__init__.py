"""Evolink unified async task gateway, Nano Banana 2 and Pro."""

from simulator.providers.evolink.provider import EvolinkProvider

__all__ = ["EvolinkProvider"]
