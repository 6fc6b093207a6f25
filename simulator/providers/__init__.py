"""Provider modules by slug. A new provider is one module here plus one folder in schemas/."""

from __future__ import annotations

from simulator.providers.base import Provider
from simulator.providers.civitai import CivitaiProvider

PROVIDERS: dict[str, type[Provider]] = {
    CivitaiProvider.slug: CivitaiProvider,
}
