"""A provider's guidance for clients (`submitOperations` and `clientGuidance` of its provider.json): which
requests submit, poll, download or fetch a fresh URL, its minimum poll interval, its idempotency key, and where
an answer says how long to wait when that is not the `Retry-After` header (Google's `RetryInfo`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulator.faults.plan import lookup
from simulator.options import provider_data
from simulator.pytest_plugin.rehearsals.files import ALIASES, RehearsalError

SOCKET_KIND = "ws"  # the journal's kind for a WebSocket frame


def _body_holds(body: Any, wanted: Mapping[str, Any]) -> bool:
    return all(lookup(body, path) == value for path, value in wanted.items())


@dataclass(frozen=True)
class Guidance:
    """`submitOperations` and `clientGuidance` of one provider.json: what each role's requests look like."""

    slug: str
    submit_ops: tuple[str, ...]
    submit_body: Mapping[str, Any]
    poll_ops: tuple[str, ...]
    poll_body: Mapping[str, Any]
    min_poll: float
    poll_doc: str
    download_ops: tuple[str, ...]
    refresh_ops: tuple[str, ...]
    refresh_body: Mapping[str, Any]
    idempotency_key: str | None
    callbacks: bool
    batch: bool
    notes: Mapping[str, str]  # why a capability is missing, for the scorecard
    wait_hint: Mapping[str, Any]  # clientGuidance.retryAfter: the wait an answer asks for, written in its body
    housekeeping: tuple[Mapping[str, Any], ...] = ()  # WebSocket frames that are no request of the client's own
    socket_retry: float | None = None  # seconds to wait after a refusal frame, which has no Retry-After
    socket_retry_doc: str = ""

    @classmethod
    def load(cls, slug: str) -> Guidance:
        data = provider_data(slug)
        guide = data.get("clientGuidance")
        if not isinstance(guide, Mapping):
            raise RehearsalError(f"schemas/{slug}/provider.json has no clientGuidance: it cannot be rehearsed")
        poll, refresh = guide.get("poll") or {}, guide.get("refreshUrl") or {}
        idempotency = guide.get("idempotency")
        socket = guide.get("socket") or {}
        return cls(
            slug=slug,
            submit_ops=tuple(data["submitOperations"]),
            submit_body=(guide.get("submit") or {}).get("body", {}),
            poll_ops=tuple(poll.get("operations", ())),
            poll_body=poll.get("body", {}),
            min_poll=float(poll.get("minSeconds", 0)),
            poll_doc=str(poll.get("doc", "")),
            download_ops=tuple((guide.get("download") or {}).get("operations", ())),
            refresh_ops=tuple(refresh.get("operations", ())),
            refresh_body=refresh.get("body", {}),
            idempotency_key=idempotency.get("key") if isinstance(idempotency, Mapping) else None,
            callbacks=bool(guide.get("callbacks")),
            batch=bool(guide.get("batch")),
            notes={
                "idempotency": str(guide.get("idempotencyDoc", "no idempotency mechanism")),
                "callbacks": str(guide.get("callbacksDoc", "no callbacks")),
                "batch": str(guide.get("batchDoc", "no batches")),
                "downloads": str(guide.get("downloadDoc", "no result URLs")),
            },
            wait_hint=guide.get("retryAfter") or {},
            housekeeping=tuple(socket.get("housekeeping", ())),
            socket_retry=socket.get("retryWithoutHint"),
            socket_retry_doc=str(socket.get("retryWithoutHintDoc", "")),
        )

    def lacks(self, requirement: str) -> str | None:
        has = {"batch": self.batch, "callbacks": self.callbacks, "idempotency": self.idempotency_key is not None,
               "downloads": bool(self.download_ops)}
        return None if has[requirement] else self.notes[requirement]

    @property
    def wait_label(self) -> str:
        return str(self.wait_hint.get("label", "Retry-After"))

    def asked_wait(self, entry: Mapping[str, Any]) -> float | None:
        """Seconds an answer's body asked the client to wait (`clientGuidance.retryAfter`: the entry of a list
        whose members match, and its field, in seconds or as a protobuf Duration `"7.5s"`), or None."""
        hint = self.wait_hint
        if not hint:
            return None
        items = lookup(entry.get("response_body"), str(hint["list"]))
        wanted = hint.get("match") or {}
        for item in items if isinstance(items, list) else ():
            if isinstance(item, Mapping) and all(item.get(k) == v for k, v in wanted.items()):
                value = item.get(str(hint["field"]))
                try:
                    return max(0.0, float(str(value).removesuffix("s")))
                except ValueError:
                    return None
        return None

    # Journal entries by role. A request is only one role, but Runware's one route carries all of them, told
    # apart by the task type in the body.
    def is_submit(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") in self.submit_ops and _body_holds(entry.get("request_body"), self.submit_body)

    def is_poll(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") in self.poll_ops and _body_holds(entry.get("request_body"), self.poll_body)

    def is_housekeeping(self, entry: Mapping[str, Any]) -> bool:
        """A WebSocket frame that keeps the socket open or signs it in (Runware's ping, authentication). Over
        REST the same task types ride along with real work (a leading authentication task), so they count."""
        return entry.get("kind") == SOCKET_KIND and any(_body_holds(entry.get("request_body"), wanted)
                                                         for wanted in self.housekeeping)

    def is_download(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") in self.download_ops

    def is_refresh(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") in self.refresh_ops and _body_holds(entry.get("request_body"),
                                                                          self.refresh_body)

    def expand(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        """A rehearsal's fault rule for this provider: `$submit`/`$poll`/`$download` become its operations (and
        body discriminators), and the rule is scoped to the provider."""
        match = dict(rule.get("match") or {})
        alias = match.get("operation")
        if alias in ALIASES:
            operations, body = {
                "$submit": (self.submit_ops, self.submit_body),
                "$poll": (self.poll_ops, self.poll_body),
                "$download": (self.download_ops, {}),
            }[alias]
            match["operation"] = list(operations)
            if body:
                match["body"] = {**body, **(match.get("body") or {})}
        match.setdefault("provider", self.slug)
        return {**rule, "match": match}

    def key_of(self, entry: Mapping[str, Any]) -> Any:
        """The idempotency key a submit carried (`body.x.y`, `header.name`, `query.name`), or None."""
        if self.idempotency_key is None:
            return None
        source, _, name = self.idempotency_key.partition(".")
        if source == "header":
            headers = {k.lower(): v for k, v in (entry.get("request_headers") or {}).items()}
            return headers.get(name.lower())
        if source == "query":
            values = (entry.get("query") or {}).get(name)
            return values[0] if values else None
        found = lookup(entry.get("request_body"), name)
        return found if isinstance(found, (str, int, float)) else None

    @property
    def key_label(self) -> str:
        return (self.idempotency_key or "").partition(".")[2] or "an idempotency key"
