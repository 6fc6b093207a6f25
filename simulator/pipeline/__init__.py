"""The request pipeline: one transport-neutral unit of work (`Exchange`) through one sequence of stages.

See simulator/pipeline/pipeline.py for the stages, simulator/transports/ for the adapters that feed it.
"""

from simulator.pipeline.answer import Answer
from simulator.pipeline.body import DEFAULT_BODY_LIMIT, MAX_JSON_DEPTH, BodyError
from simulator.pipeline.errors import INVALID, ProviderError
from simulator.pipeline.exchange import Endpoint, Exchange, Handler, Refuser, Replay
from simulator.pipeline.parameters import BadParameter

__all__ = [
    "DEFAULT_BODY_LIMIT", "INVALID", "MAX_JSON_DEPTH", "Answer", "BadParameter", "BodyError", "Endpoint",
    "Exchange", "Handler", "ProviderError", "Refuser", "Replay",
]
