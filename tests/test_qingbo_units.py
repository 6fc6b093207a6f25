"""qingbo helpers without a server: Prefer parsing, quota rounding, task IDs."""

from __future__ import annotations

import random

import pytest

from simulator.options import provider_data
from simulator.providers.qingbo.ids import new_task_id, ulid_id, user_tag, wave_id
from simulator.providers.qingbo.preferences import prefer_wait
from simulator.providers.qingbo.pricing import quota_per_image, task_quota


@pytest.mark.parametrize(
    ("headers", "asked", "seconds", "noted"),
    [
        ([], False, 0, False),
        (["wait=10"], True, 10, False),
        (["WAIT = 10"], True, 10, False),
        (['wait="7"'], True, 7, False),
        (["respond-async, wait=30"], True, 30, False),
        (["respond-async", "wait=30; foo=bar"], True, 30, False),
        (["wait=0"], True, 0, False),
        (["wait=60"], True, 60, False),
        (["wait=61"], True, 60, True),
        (["wait=999999999"], True, 60, True),
        (["wait=-1"], False, 0, True),
        (["wait=1.5"], False, 0, True),
        (["wait"], False, 0, True),
        (["return=minimal"], False, 0, False),
    ],
)
def test_prefer_wait(headers: list[str], asked: bool, seconds: int, noted: bool) -> None:
    preference = prefer_wait(headers, 60)
    assert (preference.asked, preference.seconds, preference.note is not None) == (asked, seconds, noted)


def test_quota_rounds_half_up_from_exact_decimals() -> None:
    card = provider_data("qingbo")["models"]["gemini-3.1-flash-image-preview"]
    assert quota_per_image(card, "1K", "flat", 500_000) == 15_938  # 15937.5
    assert quota_per_image(card, "4K", "by_resolution", 500_000) == 33_750
    assert quota_per_image(card, "8K", "by_resolution", 500_000) is None
    assert task_quota(card, {"resolution": "1K", "n": 3}, "flat", 500_000) == 3 * 15_938


def test_task_ids() -> None:
    rng = random.Random(1)
    assert user_tag("key") == user_tag("key") != user_tag("other")
    assert wave_id("key", 1775309821.9, rng).startswith("task-wave1775309821" + user_tag("key"))
    assert len(ulid_id(1720000000.0, rng)) == len("task_01K8SGYNNNVBQTXNR4MM964S7K")
    taken = {wave_id("key", 0, random.Random(2))}
    assert new_task_id("wave", "key", 0, random.Random(2), taken) not in taken
