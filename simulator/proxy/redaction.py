"""What may go into a cassette: deny by default, then a scanner for anything shaped like a secret.

A recording is meant to be committed, so nothing reaches it that was not let in on purpose:

- headers: only those on an allowlist (content type, user agent, rate-limit and retry hints …); `Authorization`,
  API-key headers and cookies never, whatever the list says;
- query parameters: key-like names (`key`, `api_key`, `token`, `signature`, `X-Goog-Signature` …) dropped to
  `<redacted>`, and so are JSON fields named for a credential (`apiKey` …);
- every string left, in URLs and bodies of both directions, is scanned for key-shaped text (Google `AIza…` keys and
  `ya29.…` tokens, `sk-…`, JWTs, `Bearer …`, long hex runs, URL signatures) and for the keys this session actually
  presented, which are replaced wherever they appear, shaped like a key or not; a string that is inline base64
  content (an image in a JSON body) is content, not text, and is kept whole;
- prompts, optionally, become stable hashes (`prompt:sha256:<16 hex>`), the same for the same text, so a replay
  still matches the request that carried them.

`scan` is what `nanobanana-sim cassette lint` runs over a finished file, so a secret planted by hand is caught too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"
REQUEST_HEADERS = frozenset({"content-type", "accept", "user-agent", "prefer", "idempotency-key"})
RESPONSE_HEADERS = frozenset({"content-type", "retry-after", "location", "cache-control", "allow", "etag",
                              "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit",
                              "ratelimit-policy", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"})
# Never kept, even if someone adds them to an allowlist.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
                            "x-goog-api-key", "api-key", "apikey"})
SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "token", "access_token", "auth", "signature",
                           "sig", "x-goog-signature", "x-amz-signature", "x-amz-credential", "x-goog-credential",
                           "x-amz-security-token", "password", "secret", "client_secret"})
# JSON fields that carry a credential (Runware's WebSocket `authentication` task sends `apiKey`), compared with
# case, `_` and `-` aside: their values never reach a cassette, whatever their shape.
SECRET_FIELDS = frozenset({"apikey", "xapikey", "xgoogapikey", "accesstoken", "authorization", "password", "secret",
                           "clientsecret"})
PROMPT_FIELDS = frozenset({"prompt", "positivePrompt", "negativePrompt", "negative_prompt", "text"})
# A reference the cassette makes to content it stores by hash is exempt from the long-hex rule.
HASH_PREFIXES = ("prompt:sha256:", "sha256:")

PATTERNS: dict[str, re.Pattern[str]] = {
    "google-api-key": re.compile(r"AIza[0-9A-Za-z_\-]{30,}"),
    "sk-key": re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),
    "jwt": re.compile(r"\beyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}"),
    "bearer": re.compile(r"\b[Bb]earer\s+(?!<redacted)[A-Za-z0-9._~+/\-]{8,}=*"),
    "url-signature": re.compile(
        r"(?i)[?&](?:" + "|".join(re.escape(name) for name in sorted(SECRET_PARAMS)) + r")=(?!<redacted>|%3Credacted)"
        r"[^&#\s\"']+"),
    "google-oauth": re.compile(r"\bya29\.[0-9A-Za-z_\-]{20,}"),
    "long-hex": re.compile(r"(?<![0-9A-Za-z:])[0-9a-fA-F]{32,}(?![0-9A-Za-z])"),
}


# Inline binary content (a Gemini image as base64 in JSON): megabytes of it hold `AIza` followed by 30 key characters
# by chance, so it is content, not text to scan; a key is never sent that way.
BASE64_PAYLOAD = re.compile(r"[A-Za-z0-9+/]{512,}={0,2}")


@dataclass(frozen=True)
class Hit:
    """One secret-shaped string: what kind, and where (a JSON path or a header name)."""

    kind: str
    where: str
    excerpt: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "excerpt": self.excerpt}


def _excerpt(text: str, found: re.Match[str]) -> str:
    # Enough to find it in the file, never the whole secret.
    return text[max(0, found.start() - 12):found.start()] + found.group(0)[:6] + "…"


def scan(text: str, where: str) -> list[Hit]:
    """The secret-shaped strings in `text`."""
    hits: list[Hit] = []
    if BASE64_PAYLOAD.fullmatch(text):
        return hits
    for kind, pattern in PATTERNS.items():
        for found in pattern.finditer(text):
            if kind == "long-hex" and _is_reference(text, found):
                continue
            hits.append(Hit(kind, where, _excerpt(text, found)))
    return hits


def scan_value(value: Any, where: str = "$") -> list[Hit]:
    """Every secret-shaped string anywhere in a JSON value (keys included)."""
    hits: list[Hit] = []
    if isinstance(value, str):
        hits.extend(scan(value, where))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            hits.extend(scan(str(key), f"{where}.{key}"))
            hits.extend(scan_value(item, f"{where}.{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            hits.extend(scan_value(item, f"{where}[{index}]"))
    return hits


def prompt_hash(text: str) -> str:
    return "prompt:sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Redactor:
    """Scrubs what the recorder keeps; `known` are secrets seen this session (the presented keys)."""

    hash_prompts: bool = False
    request_headers: frozenset[str] = REQUEST_HEADERS
    response_headers: frozenset[str] = RESPONSE_HEADERS
    known: set[str] = field(default_factory=set)

    def remember(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self.known.add(secret)

    def headers(self, headers: Iterable[tuple[str, str]], allowed: frozenset[str]) -> dict[str, str]:
        kept = {}
        for name, value in headers:
            lower = name.lower()
            if lower in allowed and lower not in SECRET_HEADERS:
                kept[lower] = self.text(value)
        return dict(sorted(kept.items()))

    def query(self, pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        kept: dict[str, list[str]] = {}
        for name, value in pairs:
            kept.setdefault(name, []).append(REDACTED if name.lower() in SECRET_PARAMS else self.text(value))
        return kept

    def text(self, text: str) -> str:
        if BASE64_PAYLOAD.fullmatch(text):
            return text
        for secret in self.known:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "://" in text and "?" in text and " " not in text.strip():
            text = self._url_params(text)
        for kind, pattern in PATTERNS.items():
            if kind == "url-signature":
                continue
            text = pattern.sub(partial(_replacement, kind), text)
        return PATTERNS["url-signature"].sub(lambda m: m.group(0).split("=", 1)[0] + "=" + REDACTED, text)

    def _url_params(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.query:
            return url
        pairs = [(name, REDACTED if name.lower() in SECRET_PARAMS else value)
                 for name, value in parse_qsl(parts.query, keep_blank_values=True)]
        return urlunsplit(parts._replace(query=urlencode(pairs, safe="<>:/")))

    def value(self, value: Any, key: str | None = None) -> Any:
        """A JSON value scrubbed: strings cleaned, prompts hashed where asked."""
        if isinstance(value, str):
            if key is not None and key.lower().replace("_", "").replace("-", "") in SECRET_FIELDS:
                return REDACTED
            if self.hash_prompts and key in PROMPT_FIELDS and not value.startswith("prompt:sha256:"):
                return prompt_hash(value)
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(item, str(k)) for k, item in value.items()}
        if isinstance(value, list):
            return [self.value(item, key) for item in value]
        return value


def _is_reference(text: str, found: re.Match[str]) -> bool:
    start = found.start()
    return any(text[max(0, start - len(prefix)):start] == prefix for prefix in HASH_PREFIXES)


def _replacement(kind: str, found: re.Match[str]) -> str:
    if kind == "long-hex" and _is_reference(found.string, found):
        return found.group(0)
    return f"<redacted:{kind}>"
