"""FoxAPI / AIHubMax: the task-unified gateway with FoxAPI's field names, wire shapes and errors (schemas/foxapi)."""

from __future__ import annotations

from typing import ClassVar

from simulator.providers.gateway import GatewayProvider


class FoxapiProvider(GatewayProvider):
    slug: ClassVar[str] = "foxapi"
