"""The hostile-input table: cases built from each provider's facts (tests/hostile/providers.yaml), sent raw.

Every case is one HTTP/1.1 request written byte for byte on its own connection (`Connection: close`), because
most of what is hostile here is what a client library refuses to send: bytes that are not UTF-8, a lowercase
method, a request target in absolute form, a Content-Length that lies, a chunked body past a limit. Each case
carries `x-hostile-case: <id>`, so the test finds its exchange in the journal.

The classes, applied to every provider (ids `<class>.<name>`):

- `literal`: a value the JSON reader must refuse or survive, put where the provider expects its prompt (or, for
  keys, beside it): long integers, NaN and infinities, lone surrogates, NUL, deep nesting, huge strings and
  arrays, duplicate keys, wrong types;
- `frame`: broken or odd JSON text (empty, truncated, trailing bytes, BOM, UTF-16, bad UTF-8, comments);
- `type`: content types a JSON API does not take; `encoding`: gzip bodies, a gzip bomb among them;
- `header`: missing, odd and oversized credentials and headers, and what the HTTP parser itself refuses;
- `length`: chunked bodies, Content-Length lies, bodies over the provider's limit (declared, sent, chunked);
- `method`: TRACE, CONNECT, PROPFIND, lowercase `post`, absolute-form targets, HEAD/OPTIONS/DELETE;
- `path`: traversal, NUL, emoji, bad percent-encoding, overlong IDs and queries, unknown routes;
- `callback`: callback URLs pointing inside the machine or its network, in every spelling.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CASE_HEADER = "x-hostile-case"
SENTINEL = "\u0000hostile\u0000"
TIMEOUT = 60.0


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunks: list[bytes] | None = None  # sent with Transfer-Encoding: chunked
    length: int | None = None  # the Content-Length to declare, when it is not the body's own
    raw_head: bytes | None = None  # extra header lines written verbatim (what no client library sends)
    close_early: bool = False  # the client closes once it has sent, without reading


@dataclass
class Case:
    id: str
    request: Request
    # Whether the exchange reaches the application, and so the journal: False for what uvicorn's HTTP parser
    # refuses first (its own plain 400, like any front end's), which no provider ever sees.
    journaled: bool = True


@dataclass
class Response:
    status: int | None
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# -- sending -----------------------------------------------------------------------------------------------------


def send(host: str, port: int, case: Case) -> Response:
    request = case.request
    own = str(uuid.uuid5(uuid.NAMESPACE_URL, case.id)).encode()
    body = request.body.replace(b"{uuid}", own)
    head = [f"{request.method} {request.target} HTTP/1.1", f"host: {host}:{port}", f"{CASE_HEADER}: {case.id}",
            "connection: close"]
    head += [f"{name}: {value}" for name, value in request.headers]
    if request.chunks is not None:
        head.append("transfer-encoding: chunked")
        chunks = [chunk.replace(b"{uuid}", own) for chunk in request.chunks]
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks if chunk) + b"0\r\n\r\n"
    else:
        length = request.length if request.length is not None else len(body)
        if length or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS", "TRACE"):
            head.append(f"content-length: {length}")
    data = "\r\n".join(head).encode("latin-1") + b"\r\n" + (request.raw_head or b"") + b"\r\n"
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        # The server may answer (and close) before reading it all: the answer is still there to read.
        with contextlib.suppress(OSError):
            sock.sendall(data + body)
        if request.close_early:
            return Response(None, {}, b"")
        received = bytearray()
        with contextlib.suppress(OSError):
            while chunk := sock.recv(1 << 16):
                received += chunk
    return parse(bytes(received))


def parse(data: bytes) -> Response:
    """The first response in `data` (a second one may follow when a lying Content-Length left bytes behind)."""
    head, _, rest = data.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 1"):  # an interim answer (100 Continue) before the real one
        head, _, rest = rest.partition(b"\r\n\r\n")
    if not head:
        return Response(None, {}, b"")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return Response(status, headers, rest[:length])


# -- building the cases ------------------------------------------------------------------------------------------


def table() -> dict[str, Any]:
    return yaml.safe_load((HERE / "hostile" / "providers.yaml").read_text(encoding="utf-8"))


def body_limit(slug: str) -> int:
    card = json.loads((ROOT / "schemas" / slug / "provider.json").read_text(encoding="utf-8"))
    return int(card.get("bodyLimit", {}).get("bytes", 32 * 1024 * 1024))


def _placed(document: Any, path: Sequence[str | int], value: Any) -> Any:
    out = copy.deepcopy(document)
    holder = out
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    return out


class ProviderCases:
    """Every case of every class for one provider, from its facts in providers.yaml."""

    def __init__(self, slug: str, facts: Mapping[str, Any]) -> None:
        self.slug = slug
        self.facts = facts
        self.limit = body_limit(slug)
        self.submit = facts["submit"]
        self.auth = list(facts["auth"].items())

    def all(self) -> Iterator[Case]:
        for builder in (self.literals, self.frames, self.types, self.encodings, self.headers, self.lengths,
                        self.methods, self.paths, self.callbacks):
            yield from builder()

    # -- helpers ----------------------------------------------------------------------------------------------

    def post(self, case_id: str, body: bytes, *, content_type: str | None = "application/json",
             headers: Sequence[tuple[str, str]] = (), **extra: Any) -> Case:
        sent = [*self.auth, *(headers or [])]
        if content_type is not None:
            sent.append(("content-type", content_type))
        request = Request(self.submit["method"], self.submit["path"], sent, body, **extra)
        return Case(f"{self.slug}:{case_id}", request)

    def valid(self) -> bytes:
        return json.dumps(self.facts["body"]).encode()

    def with_literal(self, text: str) -> bytes:
        """The valid body with the prompt replaced by raw JSON text."""
        placed = _placed(self.facts["body"], self.facts["prompt"], SENTINEL)
        return json.dumps(placed).replace(json.dumps(SENTINEL), text).encode("utf-8", "surrogatepass")

    def with_member(self, key_text: str, value_text: str) -> bytes:
        """The valid body with one more member, written raw, in the object that holds the prompt."""
        parent = self.facts["prompt"][:-1]
        holder_path = [*parent, SENTINEL]
        placed = _placed(self.facts["body"], holder_path, 0)
        member = f"{json.dumps(SENTINEL)}: 0"
        return json.dumps(placed).replace(member, f"{key_text}: {value_text}").encode("utf-8", "surrogatepass")

    def read(self, ident: str) -> str:
        return str(self.facts["read"]).replace("{id}", ident)

    def get(self, case_id: str, target: str, method: str = "GET", **extra: Any) -> Case:
        return Case(f"{self.slug}:{case_id}", Request(method, target, list(self.auth), **extra))

    # -- the classes ------------------------------------------------------------------------------------------

    def literals(self) -> Iterator[Case]:
        literals = {
            "big_int": "9" * 5000,
            "big_negative_int": "-" + "9" * 5000,
            "big_int_exponent": "1" + "0" * 400 + "e-400",
            "nan": "NaN",
            "infinity": "Infinity",
            "negative_infinity": "-Infinity",
            "float_overflow": "1e400",
            "lone_surrogate": '"a\\udc00b"',
            "lone_high_surrogate": '"\\ud83d"',
            "surrogate_pair": '"\\ud83d\\ude00 a lighthouse"',
            "nul_escape": '"a\\u0000b"',
            "raw_control_character": '"a\x01b"',
            "huge_string": '"' + "a" * 2_000_000 + '"',
            "deep_nesting": "[" * 10_000 + "]" * 10_000,
            "nesting_past_64": '{"a":' * 70 + "1" + "}" * 70,
            "wide_array": "[" + ",".join(["1"] * 100_000) + "]",
            "many_keys": "{" + ",".join(f'"k{i}":1' for i in range(20_000)) + "}",
            "number": "12",
            "null": "null",
            "object": '{"text": "a lighthouse"}',
            "boolean": "true",
        }
        for name, text in literals.items():
            yield self.post(f"literal.{name}", self.with_literal(text))
        prompt_key = json.dumps(self.facts["prompt"][-1])
        yield self.post("literal.lone_surrogate_key", self.with_member('"\\udc00"', "1"))
        yield self.post("literal.duplicate_key", self.with_member(prompt_key, "12"))
        yield self.post("literal.empty_key", self.with_member('""', "1"))

    def frames(self) -> Iterator[Case]:
        valid = self.valid()
        frames = {
            "empty": b"",
            "whitespace": b" \r\n\t ",
            "null": b"null",
            "string": b'"a lighthouse"',
            "empty_array": b"[]",
            "empty_object": b"{}",
            "truncated": valid[:-1],
            "trailing_garbage": valid + b" x",
            "two_documents": valid + valid,
            "single_quotes": valid.replace(b'"', b"'"),
            "comment": b"/* hostile */" + valid,
            "bom": b"\xef\xbb\xbf" + valid,
            "utf16": valid.decode().encode("utf-16"),
            "bad_utf8": self.with_literal('"a lighthouse \udcff"').replace(b"\xed\xb3\xbf", b"\xff\xfe"),
            "overlong_utf8": self.with_literal('"a \udcc0"').replace(b"\xed\xb3\x80", b"\xc0\xaf"),
        }
        for name, body in frames.items():
            yield self.post(f"frame.{name}", body)

    def types(self) -> Iterator[Case]:
        valid = self.valid()
        yield self.post("type.text_plain", valid, content_type="text/plain")
        yield self.post("type.form", b"prompt=a+lighthouse", content_type="application/x-www-form-urlencoded")
        yield self.post("type.multipart", b"--x\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\na\r\n--x--",
                        content_type="multipart/form-data; boundary=x")
        yield self.post("type.none", valid, content_type=None)
        yield self.post("type.latin1_charset", valid, content_type="application/json; charset=latin-1")
        yield self.post("type.garbage", valid, content_type="x" * 4000)

    def encodings(self) -> Iterator[Case]:
        yield self.post("encoding.gzip", gzip.compress(self.valid()), headers=[("content-encoding", "gzip")])
        # 100 MB of zeros in about 100 KB: a reader that inflated bodies would take it all into memory.
        yield self.post("encoding.gzip_bomb", _bomb(), headers=[("content-encoding", "gzip")])

    def headers(self) -> Iterator[Case]:
        valid = self.valid()
        no_auth = Request(self.submit["method"], self.submit["path"], [("content-type", "application/json")], valid)
        yield Case(f"{self.slug}:header.no_auth", no_auth)
        auth_names = [name for name, _ in self.auth]
        for name, value in (("basic", "Basic aG9zdGlsZTprZXk="), ("huge", "Bearer " + "k" * 8000),
                            ("latin1", "Bearer cl\u00e9")):
            headers = [(n, value if n == "authorization" else v) for n, v in self.auth]
            if "authorization" not in auth_names:
                headers.append(("authorization", value))
            request = Request(self.submit["method"], self.submit["path"], [*headers, ("content-type",
                              "application/json")], valid)
            yield Case(f"{self.slug}:header.auth_{name}", request)
        many = [(f"x-hostile-{i}", "v" * 20) for i in range(100)]
        yield self.post("header.many", valid, headers=many)
        yield self.post("header.forwarded_host", valid, headers=[("x-forwarded-host", "evil.example")])
        yield self.post("header.expect_continue", valid, headers=[("expect", "100-continue")])
        # What the HTTP parser refuses before any application sees it: uvicorn's own 400.
        # Obsolete line folding and a 70 KB header block reach the application (h11 takes both); a bare CR,
        # a NUL and a line without a colon are refused by the HTTP parser first, with uvicorn's own 400.
        for name, raw in (("folded", b"x-folded: a\r\n b\r\n"),
                          ("oversized_block", b"x-big: " + b"b" * 70_000 + b"\r\n"),
                          ("bare_cr", b"x-cr: a\rb\r\n"), ("nul", b"x-nul: a\x00b\r\n"),
                          ("no_colon", b"x-broken\r\n")):
            case = self.post(f"header.{name}", valid, raw_head=raw)
            case.journaled = name in ("folded", "oversized_block")
            yield case

    def lengths(self) -> Iterator[Case]:
        valid = self.valid()
        yield self.post("length.chunked", b"", chunks=[valid[:4], valid[4:]])
        yield self.post("length.longer_than_sent", valid, length=len(valid) + 100, close_early=True)
        yield self.post("length.shorter_than_sent", valid, length=len(valid) - 5)
        over = self.limit + 1024
        yield self.post("length.declared_over_limit", b"", length=over, headers=[("expect", "100-continue")])
        yield self.post("length.sent_over_limit", b"{" + b" " * (over - 2) + b"}")
        yield self.post("length.chunked_over_limit", b"", chunks=[b" " * (1 << 20)] * (over // (1 << 20) + 1))
        for name, value in (("negative", "-1"), ("not_a_number", "abc"), ("two_values", "5, 6")):
            case = self.post(f"length.{name}", valid, raw_head=f"content-length: {value}\r\n".encode())
            case.request.length = 0  # the one written above is the only one the server sees
            case.journaled = False
            yield case

    def methods(self) -> Iterator[Case]:
        path = self.submit["path"]
        for method in ("TRACE", "CONNECT", "PROPFIND", "post", "DELETE", "OPTIONS", "HEAD"):
            yield self.get(f"method.{method}", path, method)
        yield self.get("method.absolute_form", "http://evil.example" + self.read("absent-task"))
        yield self.get("method.absolute_form_https", "https://127.0.0.1" + self.read("absent-task"))

    def paths(self) -> Iterator[Case]:
        prefix = "/" + self.slug
        for name, ident in (("traversal_encoded", "..%2F..%2F_sim%2Freset"), ("nul", "a%00b"),
                            ("emoji", "%F0%9F%98%80"), ("bad_percent", "%zz"), ("overlong", "t" * 7000),
                            ("dot_dot", "..")):
            yield self.get(f"path.{name}", self.read(ident))
        yield self.get("path.traversal_raw", f"{prefix}/../_sim/reset", "POST")
        yield self.get("path.overlong_query", self.read("absent-task") + ("&" if "?" in self.read("") else "?")
                       + "q=" + "x" * 7000)
        yield self.get("path.unknown_route", f"{prefix}/v9/hostile")
        yield self.get("path.double_slashes", prefix + "//" + self.read("absent-task")[len(prefix) + 1:])

    def callbacks(self) -> Iterator[Case]:
        where = self.facts.get("callback")
        if where is None:
            return
        template = self.facts.get("callback_value", "{url}")
        for name, url in (("metadata", "http://169.254.169.254/latest/meta-data/"),
                          ("metadata_decimal", "http://2852039166/latest/meta-data/"),
                          ("metadata_mapped", "http://[::ffff:169.254.169.254]/"),
                          ("metadata_hex", "http://0xa9.0xfe.0xa9.0xfe/"),
                          ("private", "http://10.0.0.1/hook"),
                          ("internal_name", "http://metadata.google.internal/computeMetadata/v1/"),
                          ("javascript", "javascript:alert(1)"), ("file", "file:///etc/passwd"),
                          ("overlong", "https://hooks.example.com/" + "a" * 10_000),
                          ("loopback", "http://127.0.0.1:9/hook"), ("public", "https://hooks.example.com/hook")):
            value = json.loads(json.dumps(template).replace("{url}", url.replace('"', "")))
            body = json.dumps(_placed(self.facts["body"], where, value)).encode()
            yield self.post(f"callback.{name}", body)


def _bomb() -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as compressor:
        block = b"\0" * (1 << 20)
        for _ in range(100):
            compressor.write(block)
    return buffer.getvalue()


def provider_cases() -> dict[str, list[Case]]:
    return {slug: list(ProviderCases(slug, facts).all()) for slug, facts in table()["providers"].items()}



def control_cases() -> list[Case]:
    """The control plane's cases, from providers.yaml `control` (paths under /_sim)."""
    cases = []
    for spec in table()["control"]:
        if "body_bytes" in spec:
            body = b" " * int(spec["body_bytes"])
        else:
            text = str(spec.get("body", "")).replace("DIGITS", "9" * int(spec.get("digits", 0)))
            body = text.encode("utf-8", "surrogatepass")
        headers = [("content-type", "application/json"), *dict(spec.get("headers", {})).items()]
        request = Request(spec["method"], "/_sim" + spec["path"], headers, body)
        cases.append(Case(f"control:{spec['id']}", request, journaled=False))
    return cases


def link_cases(link: str, blob: str) -> list[Case]:
    """Result links: `link` a signed CDN link (`?expires=&signature=`), `blob` a Civitai blob link (`?sig=&exp=`),
    each as path and query."""
    path, _, query = link.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    signature = params["signature"]

    def variant(**changes: str) -> str:
        merged = {**params, **changes}
        return path + "?" + "&".join(f"{name}={value}" for name, value in merged.items())

    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    targets = {
        "valid": link,
        "tampered_signature": variant(signature=flipped),
        "expired": variant(expires="1000"),
        "expiry_not_a_number": variant(expires="soon"),
        "expiry_huge": variant(expires="9" * 400),
        "no_signature": path,
        "huge_signature": variant(signature="A" * 10_000),
        "traversal": path.rsplit("/", 1)[0] + "/..%2F..%2F_sim%2Freset?" + query,
        "nul": path + "%00?" + query,
        "doubled_parameters": link + "&signature=" + flipped,
    }
    cases = [Case(f"link:{name}", Request("GET", target)) for name, target in targets.items()]
    cases.append(Case("link:head", Request("HEAD", link)))
    cases.append(Case("link:post", Request("POST", link)))
    cases.append(Case("link:range", Request("GET", link, [("range", "bytes=0-10")])))
    cases.append(Case("link:absolute_form", Request("GET", "http://cdn.example" + link)))
    for name, filename in (("crlf", "a%0D%0ASet-Cookie:%20x=1"), ("nul", "a%00b.png"), ("emoji", "%F0%9F%98%80.png"),
                           ("quote", "a%22%3B%20x%3D%22y.png"), ("overlong", "f" * 5000), ("traversal", "..%2F..%2Fx")):
        cases.append(Case(f"link:blob_filename_{name}", Request("GET", f"{blob}&download=true&filename={filename}")))
    return cases
