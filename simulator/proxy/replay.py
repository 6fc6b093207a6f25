"""Replay: a cassette answers in place of the provider, on the simulator's clock.

The player is an upstream (simulator.proxy.upstream) that never leaves the process. For each request it finds
the recorded exchanges that are the same request (same method, provider path, query and body, ids aside; see
simulator.proxy.align), and picks among them by time, so a task reaches each state at its recorded offset:

- a request that brings new ids (a submit with a fresh client `taskUUID`) takes the first such recording not yet
  played, binds its ids to the live ones, and starts their clock;
- any other (a poll) takes the latest recording whose offset from the moment its ids were first seen is not past
  the live offset from the moment the live ids were bound (before the first recorded poll: the first one).

So the answers depend on the clock alone, never on how often the client asks, and an autojump or ticking virtual
clock replays a ten-minute session in no wall time. An answer the client waited for (a sync generation, recorded
taking `SYNC_FLOOR` or more) arrives after its recorded duration on the same clock, as a live sync task would.
Answers carry the live ids where the recording had its own. A client's WebSocket is answered the same way, frame by
frame (`Player.frame`): each frame the provider sent for the one matched is sent again at its recorded offset.
A request that matches nothing is refused in the provider's own error shape, and the journal note names the
field where it differs from the nearest recorded request.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from simulator.engine import Engine
from simulator.engine.webhooks import Delivery, RetryPolicy
from simulator.pipeline import Answer, Exchange
from simulator.pipeline.answer import JSON
from simulator.proxy.align import Difference, IdMap, ids_in, same
from simulator.proxy.callbacks import at, find, without_callback_urls
from simulator.proxy.cassette import Cassette, body_value, decode_body, encode_body, recorded_answer, request_of
from simulator.proxy.redaction import Redactor
from simulator.proxy.sockets import FrameSink, Link
from simulator.proxy.upstream import UpstreamError

Recorded = dict[str, Any]
# An answer that took the provider this long (seconds) was work the client waited for (a sync generation), and
# arrives after its recorded duration on the clock; a quicker one (a poll, a download: a network round trip)
# answers at once, so a client on a manual clock is never held up by latency.
SYNC_FLOOR = 1.0


def _comparable(request: Recorded) -> dict[str, Any]:
    """What two requests must share to be the same request (headers are the client's business)."""
    body = request["body"]
    return {"path": request["path"], "query": request["query"],
            "body": without_callback_urls(body_value(body)) if body and "json" in body else body}


class Player:
    def __init__(self, cassette: Cassette, engine: Engine) -> None:
        self.cassette = cassette
        self.base = cassette.upstream
        self.engine = engine
        self.now = engine.now
        self.redactor = Redactor(hash_prompts=cassette.header["redaction"]["prompts"] == "hashed")
        self.ids = IdMap()  # recorded ↔ live
        self.born: dict[str, float] = {}  # recorded id → live clock time it was bound
        self.first_seen: dict[str, float] = {}  # recorded id → seconds into the recording it first appeared
        for exchange in cassette.exchanges:
            for part in (exchange["request"], exchange["response"]):
                for token in ids_in([part.get("path", ""), body_value(part["body"])]):
                    self.first_seen.setdefault(token, exchange["at"] / 1000)
        self.started: float | None = None
        self.played: set[int] = set()
        self.replies = _replies(cassette.frames)  # a sent frame's seq → the frames the provider sent for it
        self._playing: set[asyncio.Task[None]] = set()

    def live_request(self, exchange: Exchange, rest: str) -> Recorded:
        """The live request as the recorder would have written it (redacted the same way, so it can match)."""
        body, _ = encode_body(exchange.raw_body, exchange.headers.get("content-type", ""), self.redactor)
        query = self.redactor.query(parse_qsl(exchange.query_string.decode("latin-1"), keep_blank_values=True))
        return {"method": exchange.method, "path": self.redactor.text(rest), "query": query, "body": body}

    async def send(self, exchange: Exchange, rest: str, body: bytes) -> Answer:
        now = self.now()
        if self.started is None:
            self.started = now
        live = self.live_request(exchange, rest)
        recorded_requests = [(e, e["request"]) for e in self.cassette.exchanges
                             if e["request"]["method"] == live["method"]]
        matches = self._matches(recorded_requests, live)
        recorded, pairs = self._choose(matches, now)
        for token in self.ids.bind(pairs):
            self.born[token] = now
        if recorded["seq"] not in self.played:
            self._schedule_callbacks(recorded, live, now)
        self.played.add(recorded["seq"])
        exchange.note = f"replayed cassette exchange #{recorded['seq']} ({self.cassette.path.name})"
        answer = self._answer(recorded, now)
        took = recorded["took"] / 1000
        if took >= SYNC_FLOOR:  # the provider worked on it while the client waited: so does the clock
            await self.engine.clock.sleep_until(now + took)
        return answer

    def _matches(self, candidates: list[tuple[Recorded, Recorded]], live: Recorded
                 ) -> list[tuple[Recorded, dict[str, str]]]:
        """The recorded lines whose request (of `candidates`: line, its request) is `live` but for ids, with the
        id pairs that make it so; none raises the miss, naming where the nearest one differs."""
        wanted = _comparable(live)
        matches: list[tuple[Recorded, dict[str, str]]] = []
        nearest: tuple[int, Recorded, list[Difference]] | None = None
        for line, request in candidates:
            pairs, differences = same(_comparable(request), wanted, self.ids)
            if not differences:
                matches.append((line, pairs))
            elif nearest is None or len(differences) < nearest[0]:
                nearest = (len(differences), line, differences)
        if not matches:
            raise self._miss(live, nearest)
        return matches

    def _choose(self, matches: list[tuple[Recorded, dict[str, str]]], now: float) -> tuple[Recorded, dict[str, str]]:
        fresh = [(recorded, pairs) for recorded, pairs in matches if pairs]
        if fresh:  # new ids: the first recording of this request not yet played (the sessions' order)
            unplayed = [match for match in fresh if match[0]["seq"] not in self.played]
            return (unplayed or fresh)[0]
        recorded_ids = {token for token in ids_in(_comparable(matches[0][0]["request"])) if token in self.first_seen}
        if recorded_ids:
            anchor_recorded = min(self.first_seen[token] for token in recorded_ids)
            anchor_live = min(self.born.get(token, self.started or now) for token in recorded_ids)
        else:
            anchor_recorded, anchor_live = 0.0, self.started or now
        elapsed = now - anchor_live
        due = [match for match in matches if match[0]["at"] / 1000 - anchor_recorded <= elapsed + 1e-9]
        return due[-1] if due else matches[0]

    def _schedule_callbacks(self, recorded: Recorded, live: Recorded, now: float) -> None:
        """The callbacks the provider sent after this request, sent again at their recorded offsets to the URL the
        live request names where the recorded one named the recorded URL."""
        sent = body_value(recorded["request"]["body"])
        for callback in self.cassette.webhooks:
            where = find(sent, callback["to"])
            if where is None or callback["at"] < recorded["at"] or request_of(self.cassette, callback) is not recorded:
                continue
            url = at(body_value(live["body"]), where)
            if isinstance(url, str):
                due = now + (callback["at"] - recorded["at"]) / 1000
                self.engine.clock.call_at(due, partial(self._deliver, callback, url, str(recorded["seq"])))

    def _deliver(self, callback: Recorded, url: str, stream: str) -> None:
        body = callback["request"]["body"]
        content = (json.dumps(self.ids.rightwards(body["json"]), ensure_ascii=False).encode()
                   if body is not None and "json" in body else decode_body(body, self.cassette.blobs) or b"")
        headers = callback["request"]["headers"]
        self.engine.webhooks.enqueue(Delivery(
            stream=f"replay-{stream}", url=url, payload=None, provider=self.cassette.provider, event="replayed",
            headers={k: v for k, v in headers.items() if k != "content-type"}, method=callback["request"]["method"],
            content=content, content_type=headers.get("content-type", "application/json"),
            policy=RetryPolicy(delays=())))

    def _answer(self, recorded: Recorded, now: float) -> Answer:
        response = recorded["response"]
        for token in self._adopt_minted(response["body"]):
            self.born.setdefault(token, now)
        answer = recorded_answer(response, self.cassette.blobs, self.ids.rightwards)
        if answer is None:
            kept = response["body"] or {}
            raise UpstreamError(f"cassette exchange #{recorded['seq']} answered {kept.get('bytes')} bytes of "
                                f"{kept.get('media_type')} that were not kept (record with --keep-images to "
                                "replay them)", status=404, code="not_found")
        return replace(answer, headers={name: self.ids.rightwards(value) for name, value in answer.headers.items()})

    def _adopt_minted(self, body: Any) -> list[str]:
        """The ids in a recorded answer that the provider minted (no live id stands for them): the live run keeps
        them as recorded. Returns those newly adopted."""
        minted = [token for token in ids_in(body_value(body)) if token not in self.ids.to_right]
        for token in minted:
            self.ids.bind({token: token})
        return minted

    def _miss(self, live: Recorded, nearest: tuple[int, Recorded, list[Difference]] | None) -> UpstreamError:
        if nearest is None:
            where = f"no recorded {live['method']} request at all"
        else:
            _, recorded, differences = nearest
            first = differences[0]
            where = (f"nearest is exchange #{recorded['seq']}, which differs at {first.path or '(root)'}: recorded "
                     f"{_short(first.left)}, sent {_short(first.right)}"
                     + (f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""))
        message = f"nanobanana-sim replay: no recorded exchange matches {live['method']} {live['path']}; {where}"
        return UpstreamError(message, status=404, code="not_found")

    async def open_socket(self, exchange: Exchange, rest: str, sink: FrameSink) -> Link:
        return ReplayedSocket(self, rest, sink)

    def frame(self, socket: ReplayedSocket, text: str) -> None:
        """A client frame on a replayed WebSocket: the recorded frame it is (on the same recorded connection as
        the socket's earlier ones), and the provider's frames for it sent again at their recorded offsets."""
        now = self.now()
        body, _ = encode_body(text.encode(), JSON, self.redactor)
        live = {"path": self.redactor.text(socket.rest), "query": {}, "body": body}
        sent = [(frame, {"path": frame["path"], "query": {}, "body": frame["body"]}) for frame in self.cassette.frames
                if frame["direction"] == "sent" and socket.connection in (None, frame["connection"])]
        matches = self._matches(sent, live)
        unplayed = [match for match in matches if match[0]["seq"] not in self.played]
        recorded, pairs = (unplayed or matches)[0]
        socket.connection = recorded["connection"]
        for token in self.ids.bind(pairs):
            self.born[token] = now
        self.played.add(recorded["seq"])
        for reply in self.replies.get(recorded["seq"], []):
            task = asyncio.ensure_future(self._send_on(socket, reply, now + (reply["at"] - recorded["at"]) / 1000))
            self._playing.add(task)
            task.add_done_callback(self._playing.discard)

    async def _send_on(self, socket: ReplayedSocket, reply: Recorded, due: float) -> None:
        await self.engine.clock.sleep_until(due)
        if socket.closed:
            return
        self._adopt_minted(reply["body"])
        value = body_value(reply["body"])
        text = (json.dumps(self.ids.rightwards(value), ensure_ascii=False) if value is not None
                else (decode_body(reply["body"], None) or b"").decode("utf-8", "replace"))
        if not await socket.sink(text):
            socket.closed = True

    def unplayed(self) -> list[int]:
        """The recorded exchanges and client frames no request has replayed yet (for an assert-all-played check)."""
        lines = [*self.cassette.exchanges, *(f for f in self.cassette.frames if f["direction"] == "sent")]
        return sorted(line["seq"] for line in lines if line["seq"] not in self.played)

    async def aclose(self) -> None:
        for task in list(self._playing):
            task.cancel()


class ReplayedSocket:
    """A client's WebSocket answered from the cassette (see `Player.frame`)."""

    def __init__(self, player: Player, rest: str, sink: FrameSink) -> None:
        self.player = player
        self.rest = rest
        self.sink = sink
        self.closed = False
        self.connection: int | None = None  # the recorded connection it replays, once its first frame matched

    async def send(self, text: str) -> None:
        self.player.frame(self, text)

    async def aclose(self) -> None:
        self.closed = True


def _replies(frames: list[Recorded]) -> dict[int, list[Recorded]]:
    """Which client frame each frame the provider sent answers: the latest earlier one on its connection that
    shares an id with it (a task's results name its taskUUID), else the latest earlier one."""
    replies: dict[int, list[Recorded]] = {}
    for frame in frames:
        if frame["direction"] != "received":
            continue
        earlier = [sent for sent in frames if sent["direction"] == "sent" and sent["seq"] < frame["seq"]
                   and sent["connection"] == frame["connection"]]
        names = set(ids_in(body_value(frame["body"])))
        sharing = [sent for sent in earlier if names & set(ids_in(body_value(sent["body"])))]
        owners = sharing or earlier
        if owners:
            replies.setdefault(owners[-1]["seq"], []).append(frame)
    return replies


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"
