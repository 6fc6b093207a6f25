"""Which provider endpoint a request is for: by hostname, by `/<slug>` prefix, by path and method.

Every transport asks the same router, so a provider's real hostname, its prefix and `--provider` (one
provider served at the root) mean the same over HTTP, in-process and on a WebSocket:

- `Host: orchestration.civitai.com` reaches civitai at the root (`/v2/…` is routed as `/civitai/v2/…`);
- `/civitai/v2/…` reaches civitai under its prefix; with a default provider, any other path reaches it;
- `/_sim/…` is the control plane, which is not provider traffic (`resolve` gives None).

A path a provider does not serve reaches its fallback endpoint (operation `UnknownRoute`): its own 404, or
405 with `Allow` for a known path where the provider's option says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.datastructures import QueryParams

from simulator.pipeline.answer import Answer
from simulator.pipeline.errors import ProviderError
from simulator.pipeline.exchange import Endpoint, Exchange

if TYPE_CHECKING:
    from simulator.providers.base import Provider

CONTROL_PREFIX = "/_sim"
UNKNOWN_ROUTE = "UnknownRoute"
ANY_METHOD = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class Target:
    path: str  # as routed: /<slug>/… for a provider
    prefix: str  # what the client put before the provider's own paths ("" at the root)
    provider: str | None  # the provider the request is for (None: no provider serves the path)
    endpoint: Endpoint | None = None  # None: no provider serves the path
    path_params: dict[str, str] = field(default_factory=dict)


SEEN_HOSTS = 256  # Host headers whose provider is remembered (a hostile client may send a new one each time)


class Router:
    def __init__(self, providers: Mapping[str, Provider], default: str | None = None) -> None:
        self.default = default
        self.hosts = {host.lower(): slug for slug, provider in providers.items() for host in provider.hosts}
        # Hostnames with a variable part (Vertex AI's `{location}-aiplatform.googleapis.com`): provider.json
        # `hostPatterns`, regular expressions matched against the whole lower-case name.
        self.host_patterns = [(re.compile(pattern), slug) for slug, provider in providers.items()
                              for pattern in provider.data.get("hostPatterns", [])]
        self.endpoints = {slug: provider.routes() for slug, provider in providers.items()}
        self.fallbacks = {slug: self._fallback(provider) for slug, provider in providers.items()}
        self._seen_hosts: dict[str, str | None] = {}

    def slug_for_host(self, host: str | None) -> str | None:
        """The provider whose real hostname this is (`Host` header, port dropped)."""
        if not host:
            return None
        if host in self._seen_hosts:  # a client sends the same Host on every request: its patterns matched once
            return self._seen_hosts[host]
        lowered = host.lower()
        name = lowered if lowered.startswith("[") else lowered.split(":", 1)[0]
        found = self.hosts.get(name)
        if found is None:
            found = next((slug for pattern, slug in self.host_patterns if pattern.fullmatch(name)), None)
        if len(self._seen_hosts) >= SEEN_HOSTS:
            self._seen_hosts.clear()
        self._seen_hosts[host] = found
        return found

    def resolve(self, method: str, path: str, host: str | None, query: bytes | str = b"") -> Target | None:
        """The endpoint for a request, or None for the control plane (`query`: for endpoints that a query
        parameter selects)."""
        if path.startswith(CONTROL_PREFIX):
            return None
        first = path.split("/", 2)[1] if path.startswith("/") else ""
        slug = self.slug_for_host(host)
        if slug is None and first not in self.endpoints:
            slug = self.default
        if slug is not None:
            path, prefix = f"/{slug}{path}", ""
        elif first in self.endpoints:
            slug, prefix = first, f"/{first}"
        else:
            return Target(path, "", None)
        rest = path[len(slug) + 1:]
        if not rest.startswith("/"):  # `/civitai` alone is not under the provider's prefix
            return Target(path, prefix, slug)
        params: QueryParams | None = None  # read only for an endpoint that a query parameter selects
        for endpoint in self.endpoints[slug]:
            found = endpoint.pattern.match(rest)
            if found is not None:
                if endpoint.query is not None and params is None:
                    params = QueryParams(query)
                if endpoint.serves(method, params):
                    return Target(path, prefix, slug, endpoint, found.groupdict())
        return Target(path, prefix, slug, self.fallbacks[slug], {"path": rest[1:]})

    def unknown(self, path: str) -> Answer:
        """The answer for a path no provider serves: where the providers and the control plane are."""
        body = {"error": "unknown provider route", "path": path,
                "providers": {slug: f"/{slug}" for slug in self.endpoints}, "control": CONTROL_PREFIX}
        return Answer.json(body, 404)

    def allowed(self, slug: str, rest: str) -> list[str]:
        """The methods the provider's endpoints serve at this path (none: the path itself is unknown)."""
        methods: set[str] = set()
        for endpoint in self.endpoints[slug]:
            if endpoint.pattern.match(rest):
                methods |= endpoint.allowed
        return sorted(methods)

    def _fallback(self, provider: Provider) -> Endpoint:
        async def unknown_route(exchange: Exchange) -> Answer:
            allowed = ", ".join(self.allowed(provider.slug, "/" + exchange.params["path"]))
            if allowed and provider.wrong_method_status() == 405:
                message = f"{exchange.method} is not allowed on {exchange.path}; allowed: {allowed}."
                raise ProviderError("method_not_allowed", message, status=405, headers={"Allow": allowed})
            raise ProviderError("not_found", f"No route for {exchange.method} {exchange.path}.", status=404)

        return provider.route("/{path:path}", unknown_route, ANY_METHOD, UNKNOWN_ROUTE)
