"""Which documented field an unknown one probably meant: the same concept under each provider's own name.

Users carry field names from one API to the next (`aspect_ratio` to Evolink, whose field is `size`;
`numImages` to Runware, whose field is `numberResults`). String distance alone cannot see that, so the
concepts are data (`schemas/_shared/field-concepts.json`), and spelling decides only among names of no
known concept. Used by the validator for every unknown property, so a provider that refuses the field and
one that silently ignores it both name the field the user meant.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import cache, lru_cache

from simulator.resources import schemas_dir

TABLE = "_shared/field-concepts.json"
JOINED = "+"  # `width+height`: several fields that express the concept together
SPELLING_CUTOFF = 0.6


@dataclass(frozen=True)
class Concept:
    label: str
    names: tuple[str, ...]  # in preference order; an entry may join several fields with `+`


_NOT_FOLDED = re.compile(r"[^a-z0-9]")


def _folded(name: str) -> str:
    """`aspect_ratio`, `aspectRatio` and `AspectRatio` are one spelling."""
    return _NOT_FOLDED.sub("", name.lower())


@cache
def concepts() -> tuple[Concept, ...]:
    table = json.loads((schemas_dir() / TABLE).read_text(encoding="utf-8"))["concepts"]
    return tuple(Concept(label, tuple(names)) for label, names in table.items())


@cache
def _concepts_by_spelling() -> dict[str, Concept]:
    """Each folded name to its concept (the first concept listing it, as a scan in table order would find)."""
    index: dict[str, Concept] = {}
    for concept in concepts():
        for name in concept.names:
            index.setdefault(_folded(name), concept)
    return index


def concept_of(name: str) -> Concept | None:
    """The concept a field name stands for, in any provider's spelling."""
    return _concepts_by_spelling().get(_folded(name))


@lru_cache(maxsize=1024)  # one entry per schema's field list
def _by_folding(documented: tuple[str, ...]) -> dict[str, str]:
    return {_folded(known): known for known in documented}


def meant(name: str, documented: Collection[str]) -> str | None:
    """The documented field (or `a+b` fields) that `name` probably meant, else None.

    The same name in another case or word separator first; then the same concept under this schema's
    name (a concept this schema has no name for means nothing here: Pro's missing image search is not its web
    search); only a name of no known concept goes by spelling."""
    by_folding = _by_folding(tuple(documented))  # one schema's fields, met again on every unknown field
    folded = _folded(name)
    if folded in by_folding:
        return by_folding[folded]
    concept = concept_of(name)
    if concept is not None:
        for candidate in concept.names:
            parts = candidate.split(JOINED)
            if all(_folded(part) in by_folding for part in parts):
                return JOINED.join(by_folding[_folded(part)] for part in parts)
        return None
    close = difflib.get_close_matches(folded, list(by_folding), n=1, cutoff=SPELLING_CUTOFF)
    return by_folding[close[0]] if close else None
