"""Helpers for testing clients against the simulator (callback receivers, …)."""

from simulator.testing.receiver import ReceivedRequest, WebhookReceiver

__all__ = ["ReceivedRequest", "WebhookReceiver"]
