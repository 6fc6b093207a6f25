"""The task-unified gateway family shared by FoxAPI/AIHubMax and Evolink: one implementation, data per provider."""

from simulator.providers.gateway.provider import GatewayProvider

__all__ = ["GatewayProvider"]
