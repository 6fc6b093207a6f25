"""What every provider module is: HTTP translated to engine calls, engine state to the provider's wire format."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from simulator.engine import Engine, Phase, Task
from simulator.http.context import bearer_token, context
from simulator.options import ProviderOptions, provider_data
from simulator.validation import SchemaSet, Violation, schema_set

if TYPE_CHECKING:
    from simulator.sim import Simulator

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("nanobanana_sim")


class Provider:
    """Base for provider modules. Subclasses set `slug`, build `routes()` and render errors."""

    slug: ClassVar[str]

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.data: dict[str, Any] = provider_data(self.slug)
        self.options = ProviderOptions(self.slug)
        self.schemas: SchemaSet = schema_set(self.slug)
        self.valid_tokens: set[str] | None = None
        self._attach()

    def _attach(self) -> None:
        self.engine.listen(self.slug, self.on_event)
        if "defaultBalance" in self.data:
            # Each provider's own unit: a generic default would be a few images in one and millions in another.
            self.engine.wallets.set_default(self.slug, float(self.data["defaultBalance"]))

    @property
    def engine(self) -> Engine:
        return self.sim.engine

    @property
    def hosts(self) -> list[str]:
        return list(self.data.get("hosts", []))

    def reset(self) -> None:
        self.options.reset()
        self.valid_tokens = None
        self._attach()

    # -- to be provided by each provider -----------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def error(self, status: int, message: str, *, code: str | None = None) -> Response:
        """The provider's own error envelope for a status (401, 404, 500 …)."""
        raise NotImplementedError

    def validation_error(self, violations: list[Violation]) -> Response:
        raise NotImplementedError

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        """A task of this provider reached `phase` at clock time `at` (callbacks hang off this)."""

    # -- shared plumbing -----------------------------------------------------------------------------

    def route(self, path: str, handler: Handler, methods: list[str], operation: str) -> Route:
        async def endpoint(request: Request) -> Response:
            notes = context(request)
            notes["provider"] = self.slug
            notes["operation"] = operation
            try:
                return await handler(request)
            except Exception as exc:  # a bug must still answer in the provider's shape, and be seen
                log.exception("%s %s failed", self.slug, operation)
                notes["note"] = "".join(traceback.format_exception_only(exc)).strip()
                return self.error(500, "The simulator hit an internal error; see the journal note.")

        return Route(path, endpoint, methods=methods, name=f"{self.slug}:{operation}")

    def authenticate(self, request: Request, token: str | None = None) -> str | None:
        """The API key if it is acceptable (any non-empty one unless a list was set), else None."""
        token = token if token is not None else bearer_token(request)
        if not token or (self.valid_tokens is not None and token not in self.valid_tokens):
            return None
        context(request)["owner"] = token
        return token

    def reject(self, request: Request, violations: list[Violation]) -> Response:
        context(request)["violations"] = [v.as_dict() for v in violations]
        return self.validation_error(violations)
