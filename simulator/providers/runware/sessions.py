"""Runware's WebSocket sessions: the `connectionSessionUUID`, resuming it, and frames kept for a client away.

Runware answers the authentication frame with a `connectionSessionUUID`; a client that reconnects and presents
it again in its authentication task gets the results that were produced while it was away ("buffered for 120
seconds and sent after reconnect, so the original request is not re-sent", dossier §2.2). Results are pushed
through the session, not through the socket the task came on, so a result that finds the socket gone is
kept, and a resumed session's new socket gets it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from random import Random

from simulator.engine import Engine
from simulator.engine.rng import random_uuid
from simulator.options import ProviderOptions
from simulator.pipeline import Answer
from simulator.pipeline.conversation import Conversation


@dataclass
class Held:
    answer: Answer
    task_id: str | None
    at: float  # clock time of the result it carries: the window runs from then


@dataclass(eq=False)
class Session:
    uuid: str
    owner: str
    conversation: Conversation | None
    held: list[Held] = field(default_factory=list)


class Sessions:
    def __init__(self, engine: Engine, options: ProviderOptions) -> None:
        self.engine = engine
        self.options = options
        self.by_uuid: dict[str, Session] = {}
        self.by_conversation: weakref.WeakKeyDictionary[Conversation, Session] = weakref.WeakKeyDictionary()

    def open(self, owner: str, conversation: Conversation, presented: object, rng: Random) -> Session:
        """The session a socket authenticated into: the one it presented, if it is this key's, else a new one."""
        session = self.by_uuid.get(presented) if isinstance(presented, str) else None
        if session is None or session.owner != owner:
            session = Session(random_uuid(rng), owner, conversation)
            self.by_uuid[session.uuid] = session
        session.conversation = conversation
        self.by_conversation[conversation] = session
        return session

    def of(self, conversation: Conversation) -> Session | None:
        return self.by_conversation.get(conversation)

    async def send(self, session: Session, answer: Answer, task_id: str | None, at: float) -> None:
        """Push a frame (a result of clock time `at`) to the session's socket, or keep it for the client's return."""
        conversation = session.conversation
        if conversation is not None and await conversation.push(answer, task_id=task_id):
            return
        session.held.append(Held(answer, task_id, at))

    async def resume(self, session: Session) -> None:
        """Send what was kept for the session, in order; frames held longer than the window are gone."""
        window = float(self.options["ws_resume_seconds"])
        now = self.engine.now()
        held, session.held = session.held, []
        for frame in held:
            if now - frame.at <= window:
                await self.send(session, frame.answer, frame.task_id, frame.at)

    def clear(self) -> None:
        self.by_uuid.clear()
        self.by_conversation.clear()
