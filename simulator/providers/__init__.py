"""Provider modules by slug. A new provider is one module here plus one folder in schemas/.

Modules are imported on first use, so serving one provider never loads the others.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache

from simulator.providers.base import Provider

REGISTRY: dict[str, str] = {
    "civitai": "simulator.providers.civitai:CivitaiProvider",
    "qingbo": "simulator.providers.qingbo:QingboProvider",
    "runware": "simulator.providers.runware:RunwareProvider",
    "crun": "simulator.providers.crun:CrunProvider",
    "foxapi": "simulator.providers.foxapi:FoxapiProvider",
    "evolink": "simulator.providers.evolink:EvolinkProvider",
    "gemini": "simulator.providers.gemini:GeminiProvider",
}


@cache
def provider_class(slug: str) -> type[Provider]:
    try:
        module_name, _, class_name = REGISTRY[slug].partition(":")
    except KeyError:
        raise KeyError(f"unknown provider {slug!r}; known: {sorted(REGISTRY)}") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    assert issubclass(cls, Provider)
    return cls


def available() -> list[str]:
    """Slugs whose module is present in this installation."""
    return [slug for slug in REGISTRY if importlib.util.find_spec(REGISTRY[slug].partition(":")[0]) is not None]
