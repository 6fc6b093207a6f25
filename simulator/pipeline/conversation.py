"""A connection that outlives one exchange (a WebSocket), as the handlers of its exchanges see it.

Over HTTP an exchange is the whole conversation: one request, one answer. On a WebSocket the client's frames
are exchanges of their own, each through the whole pipeline, but the connection carries state between them
(the key it authenticated with) and frames the server sends on its own (results as each image is ready).
A handler reaches that through `exchange.conversation`; the transport implements it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from simulator.pipeline.answer import Answer

Work = Callable[[], Awaitable[None]]


class Conversation(Protocol):
    # The key the connection authenticated with: the transport hands it to every later exchange as its
    # `credential`, so a frame needs no key of its own.
    credential: str | None

    def then(self, work: Work, *, instead: bool = False) -> None:
        """Start `work` once the current exchange's answer is on the wire (or, with `instead`, do not send that
        answer at all: the frames `work` pushes are the answer)."""

    async def push(self, answer: Answer, *, task_id: str | None = None) -> bool:
        """Send a frame of the server's own, self-checked and journaled like any answer; False if the connection
        is gone (the caller keeps the frame for a client that comes back)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Close the connection with `code` once the current answer is sent."""


@dataclass(frozen=True)
class SocketTerms:
    """How a provider's WebSocket behaves at the transport's level (the provider's options decide)."""

    idle_seconds: float  # clock seconds without a frame either way before the server closes the socket
    idle_close_code: int
    max_frame_bytes: int  # a larger frame is refused with the provider's error, not dropped
