"""qingbo.dev task API (`/v1/tasks`), Gemini Image Series (seed 001)."""

from simulator.providers.qingbo.provider import QingboProvider

__all__ = ["QingboProvider"]
