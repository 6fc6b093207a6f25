"""The journal stays bounded in bytes and entries, and what it keeps can always be served back as JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from conftest import TOKEN, nb2_body

from simulator.control_client import ControlClient
from simulator.engine.journal import FIELD_BYTES, Journal
from simulator.live import LiveServer


def strict_json(text: str) -> Any:
    """JSON as a strict reader takes it: NaN or Infinity fail."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


class Opaque:
    def __str__(self) -> str:
        return "opaque object"


def test_what_json_cannot_carry_is_made_json_and_said_so() -> None:
    journal = Journal()
    deep: Any = "bottom"
    for _ in range(200):
        deep = {"d": deep}
    entry = journal.record(
        "http", 1.0, request_body={"nan": float("nan"), "inf": float("-inf"), "\udc00key": "lone \ud800 surrogate",
                                   "giant": 10**5000, "bytes": b"\x00\x01", "tuple": (1, 2), "odd": Opaque()},
        response_body=deep, detail={"set": {3}},
    )
    served = strict_json(journal.serialized(entry))
    body = served["request_body"]
    assert body["nan"] == "NaN" and body["inf"] == "-Infinity"
    assert body["\ufffdkey"] == "lone \ufffd surrogate"
    assert body["giant"] == "<integer of 16610 bits>"
    assert body["bytes"] == {"bytes": 2} and body["tuple"] == [1, 2] and body["odd"] == "opaque object"
    assert served["detail"] == {"set": [3]}
    depth, node = 0, served["response_body"]
    while isinstance(node, dict):
        node, depth = node["d"], depth + 1
    assert node is None and depth == 64  # cut at the journal's depth, where it says so
    notes = "\n".join(served["truncated"])
    for path in ("request_body.nan", "request_body.giant", "request_body (a key)", "response_body", "lone surrogates"):
        assert path in notes, (path, notes)


def test_plain_entries_are_kept_as_given() -> None:
    journal = Journal()
    body = {"steps": [{"input": {"prompt": "a ripe banana", "seed": 9223372036854775807}}]}
    entry = journal.record("http", 1.0, request_body=body, status=202)
    assert entry.request_body is body and entry.truncated == []
    assert strict_json(journal.serialized(entry))["request_body"] == body


def test_a_huge_value_costs_one_field_share_and_is_cut_with_a_note() -> None:
    journal = Journal()
    prompt = "p" * (8 * 1024 * 1024)
    violation = {"path": "prompt", "message": f"{prompt!r} is too long", "sent": prompt}
    entry = journal.record("http", 1.0, request_body={"bytes": len(prompt) + 20}, violations=[violation])
    kept = entry.violations[0]
    assert len(kept["message"]) + len(kept.get("sent", "")) <= FIELD_BYTES
    assert entry.size <= 2 * FIELD_BYTES and journal.bytes == entry.size
    assert any("violations[0].message" in note and "kept the first" in note for note in entry.truncated)
    strict_json(journal.serialized(entry))


def test_bounded_in_bytes_oldest_first() -> None:
    journal = Journal(capacity=1000, max_bytes=1024 * 1024)
    for i in range(60):
        journal.record("http", float(i), request_body={"blob": "x" * 100_000})
    assert journal.bytes <= 1024 * 1024
    assert len(journal) == 10 and journal.dropped == 50
    assert [e.at for e in journal.entries()] == [float(i) for i in range(50, 60)]
    journal.clear()
    assert (len(journal), journal.bytes, journal.dropped) == (0, 0, 0)


def test_bounded_in_entries() -> None:
    journal = Journal(capacity=3)
    for i in range(5):
        journal.record("event", float(i), note=str(i))
    assert [e.note for e in journal.entries()] == ["2", "3", "4"] and journal.dropped == 2


def test_record_keeps_its_keyword_interface() -> None:
    journal = Journal()
    with pytest.raises(TypeError, match="no field"):
        journal.record("http", 0.0, truncated=["mine"])
    entry = journal.record("webhook", 2.0, provider="civitai", detail={"attempt": 1})
    assert set(entry.as_dict()) >= {"seq", "kind", "at", "provider", "detail", "truncated"}
    assert "size" not in entry.as_dict()


def test_the_served_journal_survives_hostile_exchanges(
    control: ControlClient, live_server: LiveServer, http: httpx.Client
) -> None:
    """Over HTTP: odd bodies and headers go in, and GET /_sim/journal still answers strict JSON."""
    url = live_server.provider_url("civitai") + "/v2/consumer/workflows"
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    http.post(url, content=b'{"steps": NaN}', headers=auth)
    http.post(url, content=b'{"\\udc00": 1, "steps": []}', headers=auth)
    http.post(url, json=nb2_body(prompt="x" * 300_000), headers=auth)
    response = http.get(f"{live_server.url}/_sim/journal")
    assert response.status_code == 200
    entries = strict_json(response.text)["entries"]
    assert len(entries) == 3 and entries[2]["status"] == 400
    assert control.info()["journal"]["bytes"] > 0
