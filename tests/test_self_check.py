"""The response self-check: the operations tables are complete, and a broken answer is caught in each mode.

The project's own test run sets NANOBANANA_SELF_CHECK=strict (tests/conftest.py), so every answer every
other test receives has been checked against its provider's response schemas.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator.cli import build_parser
from simulator.clock import VirtualClock
from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.operations import operations
from simulator.options import provider_data
from simulator.pipeline import Answer, Exchange
from simulator.providers import available
from simulator.providers.qingbo.provider import QingboProvider
from simulator.self_check import ENV, default_mode
from simulator.sim import Simulator
from simulator.testing.receiver import WebhookReceiver
from simulator.validation import schema_set

pytest_plugins = ["pytester"]

SLUGS = available()
KEY = "sk-self-check"


def _route_operations(slug: str) -> set[str]:
    sim = Simulator(clock=VirtualClock(), providers=[slug], self_check="off")
    return {str(route.name).split(":", 1)[1] for route in sim.provider(slug).routes()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("slug", SLUGS)
def test_every_route_has_an_operations_entry_and_every_entry_a_route(slug: str) -> None:
    table = set(operations(slug))
    served = _route_operations(slug)
    assert served - table == set(), f"{slug}: routes without an operations entry"
    assert table - served == {"UnknownRoute"}, f"{slug}: operations entries without a route"


@pytest.mark.parametrize("slug", SLUGS)
def test_every_schema_the_tables_name_exists(slug: str) -> None:
    known = set(schema_set(slug).names())
    option_specs = provider_data(slug).get("options", {})
    for name, operation in operations(slug).items():
        if operation.request:
            placeholders = [field for _, field, _, _ in string.Formatter().parse(operation.request) if field]
            choices = [option_specs[field].get("choices", [option_specs[field]["default"]]) for field in placeholders]
            for picked in zip(*choices, strict=True) if placeholders else [()]:
                schema = operation.request_schema(dict(zip(placeholders, picked, strict=True)))
                assert schema in known, f"{slug} {name}: request schema {schema} is missing"
        for status, spec in operation.responses.items():
            assert re.fullmatch(r"[1-5](\d\d|XX)|default", status), f"{slug} {name}: bad status key {status}"
            for schema in spec.schemas:
                assert schema in known, f"{slug} {name} {status}: response schema {schema} is missing"


def test_the_environment_sets_the_default_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "OFF")
    assert default_mode() == "off"
    monkeypatch.setenv(ENV, "sometimes")
    with pytest.raises(ValueError, match=r"off.*record.*strict"):
        default_mode()


# -- a simulator whose qingbo GetTask answers what qingbo never sends ------------------------------------------


@pytest.fixture(params=["json", "text"])
def broken_get_task(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    async def broken(self: QingboProvider, exchange: Exchange) -> Answer:
        if request.param == "json":
            return Answer.json({"id": 42, "status": "sort of done"})
        return Answer.content("done!", "text/plain")

    monkeypatch.setattr(QingboProvider, "get_task", broken)
    return str(request.param)


def _serve(mode: str) -> Iterator[tuple[httpx.Client, ControlClient]]:
    sim = Simulator(clock=VirtualClock(autojump=True), providers=["qingbo"], self_check=mode)
    with LiveServer(sim) as live, httpx.Client(base_url=live.provider_url("qingbo"),
                                               headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as http:
        yield http, ControlClient(live.url)


def _read_task(http: httpx.Client) -> httpx.Response:
    submitted = http.post("/v1/tasks", json={"model": "gemini-3.1-flash-image-preview", "prompt": "a banana"})
    assert submitted.status_code == 200, submitted.text
    return http.get(f"/v1/tasks/{submitted.json()['task_id']}")


def test_record_mode_passes_the_broken_answer_on_and_journals_why(broken_get_task: str) -> None:
    for http, control in _serve("record"):
        answer = _read_task(http)
        assert answer.status_code == 200
        entry = control.journal(operation="GetTask")[-1]
        (finding,) = entry["self_check"]
        if broken_get_task == "json":
            assert finding["schema"] == "response/task"
            assert finding["violations"] and finding["status"] == 200
        else:
            assert "expected a JSON body (response/task)" in finding["problem"]
        assert control.journal(operation="SubmitTask")[-1]["self_check"] == []


def test_strict_mode_answers_the_providers_own_500_instead(broken_get_task: str) -> None:
    for http, control in _serve("strict"):
        answer = _read_task(http)
        assert answer.status_code == 500
        error = answer.json()["error"]
        assert set(error) == {"message", "code"} and "self-check failed" in error["message"]
        assert control.journal(operation="GetTask")[-1]["self_check"]


def test_off_checks_nothing(broken_get_task: str) -> None:
    for http, control in _serve("off"):
        assert _read_task(http).status_code == 200
        assert control.journal(operation="GetTask")[-1]["self_check"] == []


def test_a_status_the_users_fault_rule_chose_is_not_held_against_the_simulator() -> None:
    for http, control in _serve("strict"):
        control.add_faults({"match": {"operation": "GetTask"}, "do": {"error": "http", "status": 418}})
        assert _read_task(http).status_code == 418
        assert control.journal(operation="GetTask")[-1]["self_check"] == []


# -- callbacks -----------------------------------------------------------------------------------------------------


def _callback_sent(http: httpx.Client, control: ControlClient, receiver: WebhookReceiver) -> dict[str, Any]:
    body = {"model": "gemini-3.1-flash-image-preview", "prompt": "a banana", "callback_url": receiver.url}
    assert http.post("/v1/tasks", json=body).status_code == 200
    control.advance(600)
    control.flush_webhooks()
    (entry,) = control.journal(kind="webhook")
    return entry


@pytest.mark.parametrize("documented", [{"*": "response/cancel"}, {"processing": "response/callback"}],
                         ids=["wrong-schema", "undocumented-event"])
@pytest.mark.parametrize("mode", ["record", "strict"])
def test_a_callback_payload_that_breaks_the_contract(mode: str, documented: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded and sent in record mode, withheld in strict mode. The payload table is swapped for one the
    (correct) payload cannot satisfy, which is how a provider bug would look from the outside."""
    monkeypatch.setitem(provider_data("qingbo"), "webhookPayloads", documented)
    with WebhookReceiver() as receiver:
        for http, control in _serve(mode):
            entry = _callback_sent(http, control, receiver)
            (finding,) = entry["self_check"]
            assert finding["event"] == "completed"
            if mode == "record":
                assert entry["detail"]["outcome"] == "delivered" and len(receiver.requests) == 1
            else:
                assert entry["detail"]["outcome"] == "withheld" and receiver.requests == []


def test_a_good_callback_payload_passes() -> None:
    with WebhookReceiver() as receiver:
        for http, control in _serve("strict"):
            entry = _callback_sent(http, control, receiver)
            assert entry["self_check"] == [] and entry["detail"]["outcome"] == "delivered"


# -- through the pytest plugin -----------------------------------------------------------------------------------

PLUGIN_TEST = """
import httpx
import pytest

from simulator.pipeline import Answer
from simulator.providers.qingbo.provider import QingboProvider


@pytest.fixture
def broken(monkeypatch):
    async def get_task(self, exchange):
        return Answer.json({"id": 42})
    monkeypatch.setattr(QingboProvider, "get_task", get_task)


@pytest.mark.nanobanana("qingbo", contract=False)
def test_reads_a_task(broken, nanobanana):
    with httpx.Client(base_url=nanobanana.base_url("qingbo"), headers=nanobanana.auth_headers("qingbo")) as http:
        task = http.post("/v1/tasks", json={"model": "gemini-3.1-flash-image-preview", "prompt": "a banana"}).json()
        assert http.get(f"/v1/tasks/{task['task_id']}").status_code == 200
"""


def test_the_plugin_fails_a_test_that_met_a_broken_answer_and_says_whose_bug_it_is(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--nanobanana-self-check=record")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "nanobanana self-check: 1 of the simulator's answers or callbacks fell outside the provider's" in output
    assert "This is a nanobanana-sim bug, not your client's" in output
    assert re.search(r"GET /qingbo/v1/tasks/\S+ → 200\s+\[qingbo GetTask\]", output)
    assert "✗ not a valid response/task: " in output

    pytester.makepyfile(PLUGIN_TEST)
    pytester.runpytest_inprocess("-p", "no:cacheprovider", "--nanobanana-self-check=off").assert_outcomes(passed=1)


# -- the control plane and the CLI -------------------------------------------------------------------------------


def test_the_mode_is_set_and_read_over_the_control_plane_and_reset_restores_it(broken_get_task: str) -> None:
    for http, control in _serve("record"):
        assert control.self_check() == {"mode": "record", "broken": 0}
        assert control.self_check("strict")["mode"] == "strict"
        assert _read_task(http).status_code == 500
        assert control.self_check() == {"mode": "strict", "broken": 1}
        assert [entry["operation"] for entry in control.journal(self_check="true")] == ["GetTask"]
        assert httpx.put(f"{control.base_url}/_sim/self-check", json={"mode": "loud"}).status_code == 400
        control.reset()
        assert control.self_check() == {"mode": "record", "broken": 0}


def test_serve_takes_the_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args(["serve", "--self-check", "off"]).self_check == "off"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--self-check", "loud"])
    assert "argument --self-check: takes one of off, record, strict, not 'loud'" in capsys.readouterr().err
