"""Evolink: the task-unified gateway with Evolink's field names, wire shapes, errors and callbacks (schemas/evolink)."""

from __future__ import annotations

from typing import ClassVar

from simulator.providers.gateway import GatewayProvider


class EvolinkProvider(GatewayProvider):
    slug: ClassVar[str] = "evolink"
