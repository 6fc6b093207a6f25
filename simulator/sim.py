"""The simulator as one object: the engine, the providers on it, the pipeline and router every transport shares,
and the ASGI app that serves them over HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp

from simulator.clock import Clock, RealClock, VirtualClock
from simulator.engine import Engine, Moderation
from simulator.engine.webhooks import Delivery
from simulator.faults import scenario
from simulator.http.app import build_app
from simulator.pipeline.pipeline import Pipeline
from simulator.pipeline.routing import Router
from simulator.providers import REGISTRY, available, provider_class
from simulator.providers.base import Provider
from simulator.security import control_token_from, signing_key_from
from simulator.self_check import Mode, check_payload, default_mode, describe

log = logging.getLogger("nanobanana_sim")


class Simulator:
    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        providers: Iterable[str] | None = None,
        default_provider: str | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        journal_capacity: int = 50_000,
        task_capacity: int = 100_000,
        self_check: str | None = None,
        signing_key: bytes | None = None,
        control_token: str | None = None,
    ) -> None:
        self._initial_self_check = Mode(self_check) if self_check is not None else default_mode()
        # Both default to the environment; see simulator/security.py (a random key, an open control plane).
        self.control_token = control_token_from(control_token)
        self.engine = Engine(clock or RealClock(), seed, secret=signing_key_from(signing_key),
                             journal_capacity=journal_capacity, task_capacity=task_capacity)
        self.pipeline = Pipeline(self.engine, self._initial_self_check)
        self._clock_start = self.clock.now()
        self._autojump = isinstance(self.clock, VirtualClock) and self.clock.autojump
        self._tick = self.clock.tick if isinstance(self.clock, VirtualClock) else 0.0
        slugs = list(providers) if providers is not None else available()
        unknown = [slug for slug in slugs if slug not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; known: {sorted(REGISTRY)}")
        if default_provider is not None and default_provider not in slugs:
            raise ValueError(f"--provider {default_provider!r} is not one of {slugs}")
        self.default_provider = default_provider
        self.providers: dict[str, Provider] = {slug: provider_class(slug)(self.engine) for slug in slugs}
        self.router = Router(self.providers, default_provider)
        self._initial_options = {slug: dict(values) for slug, values in (options or {}).items()}
        self._apply_options()
        self.engine.webhooks.inspect = self._inspect_delivery
        self._app: ASGIApp | None = None
        # Set while the server shuts down: live streams (the inspector's journal) end instead of holding it open.
        self.closing = False
        self.scenarios: list[dict[str, Any]] = []

    def _apply_options(self) -> None:
        for slug, values in self._initial_options.items():
            for name, value in values.items():
                self.provider(slug).options.set(name, value)

    def _inspect_delivery(self, delivery: Delivery) -> tuple[list[dict[str, Any]], bool]:
        """The self-check of an outgoing callback: its findings, and whether strict mode withholds it."""
        if self.self_check is Mode.OFF or delivery.content is not None or delivery.provider not in self.providers:
            return [], False
        findings = check_payload(self.providers[delivery.provider], delivery.event, delivery.payload)
        if findings:
            log.error("nanobanana-sim self-check: %s callback %s breaks its contract: %s",
                      delivery.provider, delivery.event, describe(findings))
        return findings, bool(findings) and self.self_check is Mode.STRICT

    @property
    def self_check(self) -> Mode:
        """The response self-check's mode (see simulator.self_check), for answers and callbacks alike."""
        return self.pipeline.self_check

    @self_check.setter
    def self_check(self, mode: Mode) -> None:
        self.pipeline.self_check = mode

    @property
    def clock(self) -> Clock:
        return self.engine.clock

    def provider(self, slug: str) -> Provider:
        try:
            return self.providers[slug]
        except KeyError:
            raise KeyError(f"provider {slug!r} is not served; serving {sorted(self.providers)}") from None

    def reset(self, seed: int | None = None) -> None:
        """Back to a fresh start: no tasks or journal, default options and wallets, the clock rewound."""
        self.engine.reset(seed)
        if isinstance(self.clock, VirtualClock):
            self.clock.rewind(self._clock_start)
            self.clock.autojump = self._autojump
            self.clock.tick = self._tick
        for provider in self.providers.values():
            provider.reset()
        self._apply_options()
        self.self_check = self._initial_self_check
        for loaded in self.scenarios:
            scenario.apply(self, loaded)

    def load_scenario(self, loaded: dict[str, Any]) -> None:
        """Put a parsed scenario in force now and after every reset (a bad one changes nothing)."""
        scenario.apply(self, loaded)
        self.scenarios.append(loaded)

    def clear_scenarios(self) -> None:
        """Drop every scenario's rules, limits, moderation patterns, options and starting balances;
        tasks, the journal, tokens and balances already set stay as they are."""
        self.scenarios.clear()
        engine = self.engine
        engine.faults.clear()
        engine.limits.clear()
        engine.moderation = Moderation()
        engine.wallets.clear_defaults()
        for provider in self.providers.values():
            provider.options.reset()
            provider.attach()
        self._apply_options()

    @property
    def app(self) -> ASGIApp:
        if self._app is None:
            self._app = build_app(self)
        return self._app
