"""JSON Patch (RFC 6902) over JSON Pointers (RFC 6901), for providers whose routes take a patch document.

`apply` never changes its input: it works on a copy and either returns the patched copy or raises
`PatchError` naming the operation (by index) that could not be applied, so a provider can refuse the
whole patch the way a transactional server does.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

Container = dict[str, Any] | list[Any]


class PatchError(ValueError):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"operation {index}: {message}")
        self.index = index


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON Pointer (it must be empty or start with '/')")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _index(container: list[Any], token: str, *, for_insert: bool) -> int:
    if token == "-" and for_insert:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise ValueError(f"{token!r} is not an array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not for_insert):
        raise ValueError(f"index {index} is out of range (the array has {len(container)} items)")
    return index


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise ValueError(f"member {token!r} does not exist")
        return node[token]
    if isinstance(node, list):
        return node[_index(node, token, for_insert=False)]
    raise ValueError(f"{token!r} addresses into a {type(node).__name__}, which has no members")


def get(document: Any, pointer: str) -> Any:
    node = document
    for token in _tokens(pointer):
        node = _child(node, token)
    return node


def _parent(document: Any, pointer: str) -> tuple[Container, str]:
    tokens = _tokens(pointer)
    node = document
    for token in tokens[:-1]:
        node = _child(node, token)
    if not isinstance(node, dict | list):
        raise ValueError(f"{pointer!r}: its parent is a {type(node).__name__}, which has no members")
    return node, tokens[-1]


def _add(document: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(document, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    else:
        parent.insert(_index(parent, token, for_insert=True), value)
    return document


def _remove(document: Any, pointer: str) -> tuple[Any, Any]:
    if pointer == "":
        raise ValueError("the whole document cannot be removed")
    parent, token = _parent(document, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise ValueError(f"member {token!r} does not exist")
        return document, parent.pop(token)
    return document, parent.pop(_index(parent, token, for_insert=False))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 and true differ, 1 and 1.0 do not, objects ignore member order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _step(document: Any, operation: dict[str, Any]) -> Any:
    op, path = operation["op"], operation["path"]
    if op == "add":
        return _add(document, path, copy.deepcopy(operation["value"]))
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":  # = remove (the target must exist), then add at the same place
        if path == "":
            return copy.deepcopy(operation["value"])
        return _add(_remove(document, path)[0], path, copy.deepcopy(operation["value"]))
    if op == "test":
        if not _same(get(document, path), operation["value"]):
            raise ValueError(f"the value at {path!r} is not the one the test expects")
        return document
    source = operation["from"]
    if op == "move":
        if path.startswith(source + "/"):
            raise ValueError(f"{source!r} cannot be moved into its own child {path!r}")
        document, value = _remove(document, source)
        return _add(document, path, value)
    if op == "copy":
        return _add(document, path, copy.deepcopy(get(document, source)))
    raise ValueError(f"unknown op {op!r}")


def apply(document: Any, operations: Sequence[dict[str, Any]]) -> Any:
    """The patched copy of `document`. `operations` must already fit the patch schema (op, path, from, value)."""
    patched = copy.deepcopy(document)
    for index, operation in enumerate(operations):
        try:
            patched = _step(patched, operation)
        except (ValueError, KeyError) as exc:
            message = f"'{exc.args[0]}' is missing" if isinstance(exc, KeyError) else str(exc)
            raise PatchError(index, message) from None
    return patched
