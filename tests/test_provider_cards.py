"""Every provider's data card declares what the shared failure machinery needs."""

from __future__ import annotations

import pytest

from simulator.faults.errors import DEFAULT_ERRORS
from simulator.options import provider_data
from simulator.providers import REGISTRY


@pytest.mark.parametrize("slug", sorted(REGISTRY))
def test_card_declares_models_submits_and_fault_kinds(slug: str) -> None:
    card = provider_data(slug)
    assert card["hosts"], "requests with the provider's real Host header must reach it"
    assert card["modelPaths"], "rules match on the model"
    assert card["submitOperations"], "concurrency limits guard the operations that create work"
    missing = sorted(set(DEFAULT_ERRORS) - set(card["faults"]))
    assert not missing, f"{slug} does not say how it renders {missing}"
