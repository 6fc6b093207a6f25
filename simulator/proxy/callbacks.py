"""Callbacks through the proxy: a request's webhook URL is swapped for one on the proxy, so the provider's callbacks
come back through it, are recorded, and are passed on to where the client asked for them.

The swap happens only where the provider can reach the proxy: with a public URL (`--public-url`, e.g. a tunnel)
or when the upstream itself is on loopback (a second simulator in a test). Otherwise the client's URL goes out
untouched and the provider calls it directly, unrecorded.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any
from urllib.parse import urlsplit

from simulator.engine.webhooks import is_loopback

PATH = "/_nanobanana-sim/callbacks/"
# The fields providers name their callback URL by (Runware webhookURL, qingbo callback_url, CivitAI callbacks …).
CALLBACK_KEY = re.compile(r"webhook|callback|notify", re.IGNORECASE)
JsonPath = tuple[str | int, ...]


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and urlsplit(value).scheme in ("http", "https")


def find(value: Any, wanted: str, path: JsonPath = ()) -> JsonPath | None:
    """Where in a JSON value the string `wanted` sits."""
    if value == wanted:
        return path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in children:
        found = find(item, wanted, (*path, key))
        if found is not None:
            return found
    return None


def at(value: Any, path: JsonPath) -> Any:
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def with_callback_urls(value: Any, url: str, key: str = "") -> Any:
    """A JSON value with every callback URL replaced by `url`."""
    if isinstance(value, dict):
        return {k: with_callback_urls(item, url, str(k)) for k, item in value.items()}
    if isinstance(value, list):
        return [with_callback_urls(item, url, key) for item in value]
    return url if _is_url(value) and CALLBACK_KEY.search(key) else value


def without_callback_urls(value: Any) -> Any:
    """A JSON value with its callback URLs blanked: they name the client's own receiver, which moves every run."""
    return with_callback_urls(value, "<callback URL>")


class Callbacks:
    def __init__(self, upstream: str, public: str | None = None) -> None:
        self.public = public.rstrip("/") if public else None
        self.enabled = public is not None or is_loopback(upstream)
        self.routes: dict[str, str] = {}  # token → the client's own URL
        self._tokens = (f"{n:06d}" for n in itertools.count(1))

    def token(self, rest: str) -> str | None:
        """The token of a callback the provider sent to the proxy (None: not a callback path)."""
        return rest.removeprefix(PATH) if rest.startswith(PATH) and rest[len(PATH):] in self.routes else None

    def swap(self, raw: bytes, base: str) -> bytes:
        """The body with every callback URL pointing at the proxy (the bytes unchanged when there is none)."""
        if not self.enabled or not raw or b"http" not in raw:
            return raw
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        swapped = self._swap(value, self.public or base.rstrip("/"))
        return raw if swapped == value else json.dumps(swapped, ensure_ascii=False).encode()

    def _swap(self, value: Any, base: str, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self._swap(item, base, str(k)) for k, item in value.items()}
        if isinstance(value, list):
            return [self._swap(item, base, key) for item in value]
        if _is_url(value) and CALLBACK_KEY.search(key):
            token = next(self._tokens)
            self.routes[token] = value
            return f"{base}{PATH}{token}"
        return value
