"""JSON Patch as RFC 6902 specifies it: the examples of its Appendix A, and the errors it requires."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.json_patch import PatchError, apply, get

# (document, patch, result) — RFC 6902 Appendix A.1 to A.16 where they apply to a JSON value in memory.
EXAMPLES = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"foo": "bar"}, [{"op": "copy", "from": "/foo", "path": "/baz"}], {"foo": "bar", "baz": "bar"}),
    ({"foo": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
]


@pytest.mark.parametrize(("document", "patch", "result"), EXAMPLES)
def test_rfc_6902_examples(document: Any, patch: list[dict[str, Any]], result: Any) -> None:
    before = repr(document)
    assert apply(document, patch) == result
    assert repr(document) == before  # the input is never changed


@pytest.mark.parametrize(
    ("document", "patch", "message"),
    [
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "not the one the test expects"),  # A.9
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "'baz' does not exist"),  # A.12
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], "not the one"),  # A.15: "10" ≠ 10
        ({"foo": 1}, [{"op": "test", "path": "/foo", "value": True}], "not the one"),  # true is not 1
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/2", "value": 1}], "out of range"),
        ({"foo": ["bar"]}, [{"op": "remove", "path": "/foo/01"}], "not an array index"),
        ({"foo": {"a": 1}}, [{"op": "move", "from": "/foo", "path": "/foo/b"}], "its own child"),
        ({"foo": "bar"}, [{"op": "remove", "path": ""}], "cannot be removed"),
        ({"foo": "bar"}, [{"op": "add", "path": "/foo/x", "value": 1}], "has no members"),
        ({"foo": 1}, [{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}], "operation 1"),
    ],
)
def test_what_cannot_be_applied_names_the_operation(document: Any, patch: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply(document, patch)


def test_pointers_unescape_tilde_and_slash() -> None:
    assert get({"a/b": {"m~n": 8}}, "/a~1b/m~0n") == 8
    assert get([1, [2, 3]], "/1/0") == 2
    assert get({"x": 1}, "") == {"x": 1}
