"""A small Python client for the control plane (/_sim), the same operations any language can call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from simulator.security import CONTROL_TOKEN_ENV


class ControlError(RuntimeError):
    """A refused call: `status` is the HTTP status, `field` the field the simulator named (if any)."""

    def __init__(self, message: str, status: int = 0, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class ControlClient:
    """`token` (default: the NANOBANANA_CONTROL_TOKEN environment variable) is sent as `Authorization: Bearer`
    on every call, for a simulator started with a control token."""

    def __init__(self, base_url: str, *, client: httpx.Client | None = None, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_http = client is None
        self._http = client or httpx.Client(timeout=60)
        token = token if token is not None else os.environ.get(CONTROL_TOKEN_ENV) or None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"{self.base_url}/_sim{path}", headers=self._headers, **kwargs)
        if response.status_code >= 400:
            try:
                field = response.json().get("field")
            except ValueError:
                field = None
            raise ControlError(f"{method} /_sim{path} → {response.status_code}: {response.text}",
                               response.status_code, field)
        return response.json() if response.content else None

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/")

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        return self._call("POST", "/reset", json={} if seed is None else {"seed": seed})

    def now(self) -> float:
        return float(self._call("GET", "/clock")["now"])

    def set_autojump(self, enabled: bool) -> None:
        self._call("PUT", "/clock", json={"autojump": enabled})

    def set_tick(self, seconds: float) -> None:
        """Move the virtual clock on by `seconds` before every provider request (0 turns it off)."""
        self._call("PUT", "/clock", json={"tick": seconds})

    def advance(self, seconds: float) -> float:
        return float(self._call("POST", "/clock/advance", json={"seconds": seconds})["now"])

    def advance_to(self, t: float) -> float:
        return float(self._call("POST", "/clock/advance", json={"to": t})["now"])

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        params = {key: value for key, value in filters.items() if value is not None}
        return list(self._call("GET", "/journal", params=params)["entries"])

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")

    def tasks(self, provider: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/tasks", params={"provider": provider} if provider else {})["tasks"])

    def task(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"/tasks/{task_id}")

    def balance(self, provider: str, api_key: str) -> float:
        return float(self._call("GET", f"/credits/{provider}/{api_key}")["balance"])

    def set_balance(self, provider: str, api_key: str, balance: float) -> float:
        return float(self._call("PUT", f"/credits/{provider}/{api_key}", json={"balance": balance})["balance"])

    def set_tokens(self, provider: str, tokens: list[str] | None) -> None:
        self._call("PUT", f"/auth/{provider}", json={"tokens": tokens})

    def options(self, provider: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/options/{provider}")["options"])

    def set_options(self, provider: str, **values: Any) -> dict[str, Any]:
        return dict(self._call("PUT", f"/options/{provider}", json=values)["options"])

    def self_check(self, mode: str | None = None) -> dict[str, Any]:
        """The response self-check's mode (off / record / strict; set it with `mode`) and how many journal
        entries it found broken."""
        if mode is None:
            return dict(self._call("GET", "/self-check"))
        return dict(self._call("PUT", "/self-check", json={"mode": mode}))

    def set_moderation(self, patterns: list[str]) -> None:
        self._call("PUT", "/moderation", json={"patterns": patterns})

    def add_faults(self, *rules: dict[str, Any]) -> list[dict[str, Any]]:
        """Add fault rules ({match, when, do}); returns every rule with its match/fire counters."""
        return list(self._call("POST", "/faults", json={"rules": list(rules)})["rules"])

    def faults(self) -> dict[str, Any]:
        return dict(self._call("GET", "/faults"))

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def set_limits(self, *limits: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self._call("PUT", "/limits", json={"limits": list(limits)})["limits"])

    def load_scenario(self, name: str | None = None, *, yaml: str | None = None) -> dict[str, Any]:
        """A shipped scenario by name, a scenario file here (its text is sent: the simulator never reads files it
        is named), or a scenario document as YAML text."""
        if name is not None and Path(name).is_file():
            path = Path(name)
            body = {"yaml": path.read_text(encoding="utf-8"), "source": path.stem}
        elif name is not None:
            body = {"name": name}
        elif yaml is not None:
            body = {"yaml": yaml}
        else:
            raise ValueError("name a scenario, or give its YAML text")
        return dict(self._call("POST", "/scenarios", json=body))

    def scenarios(self) -> dict[str, Any]:
        return dict(self._call("GET", "/scenarios"))

    def clear_scenarios(self) -> None:
        self._call("DELETE", "/scenarios")

    def openapi(self, slug: str) -> dict[str, Any]:
        """The served provider's OpenAPI 3.1 document, its server being this simulator."""
        return dict(self._call("GET", f"/openapi/{slug}"))

    def flush_webhooks(self) -> int:
        return int(self._call("POST", "/webhooks/flush")["pending"])

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
