"""Google's own API: the Gemini API and Vertex AI (see provider.py)."""

from simulator.providers.gemini.provider import GeminiProvider

__all__ = ["GeminiProvider"]
