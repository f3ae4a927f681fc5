"""Hypothesis strategies for the encodings that break parsers rather than rules: nesting depth,
lone surrogates, non-UTF-8 bytes, and malformed HTTP Basic credentials.

Shared by the form fuzzer (test_fuzz_forms.py) and the JSON-endpoint fuzzer
(test_fuzz_json_endpoints.py). Every example is hostile (ordinary values are the other
strategies' job): deep documents go past Python's recursion limit (~1,000 levels), so that a
parser without a depth limit is found, and stay under the size limits (64 kB a request, 4 kB
an authorization parameter) so that they reach the parser.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import strategies as st

DEFAULT_RECURSION_LIMIT = 1_000  # Python's, which a gunicorn worker runs with
SURROGATES = ["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud83d"]  # as JSON escapes: lone high and low


def _nested(depth: int, opener: str) -> str:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return opener * depth + "0" + closer * depth


deep_json = st.builds(_nested, st.integers(min_value=1_500, max_value=3_000), st.sampled_from(["[", '{"a":']))
# As a parameter value: arrays of 1,500-2,000 levels fit the 4 kB a parameter may hold.
deep_json_parameter = st.builds(_nested, st.integers(min_value=1_500, max_value=2_000), st.just("["))
lone_surrogate_json = st.tuples(st.sampled_from(SURROGATES), st.booleans()).map(
    lambda item: f'{{"{item[0]}": "x"}}' if item[1] else f'{{"x": "a{item[0]}b"}}')  # in a name or a value
# JSON text an attacker may send as a parameter value (OIDC Core §5.5 ``claims``).
hostile_json_text = st.one_of(deep_json_parameter, lone_surrogate_json)
# Bodies: deep and surrogate documents, bare and as a member (a ceremony's "credential", a
# registration's "jwks"), and bytes that are not UTF-8.
_MEMBERS = ["credential", "userinfo", "redirect_uris", "jwks"]


def _as_member(item: tuple[str, str]) -> bytes:
    return f'{{"{item[0]}": {item[1]}}}'.encode()


hostile_json_body = st.one_of(
    st.one_of(deep_json.map(str.encode), st.tuples(st.sampled_from(_MEMBERS), deep_json).map(_as_member)),
    st.one_of(lone_surrogate_json.map(str.encode),
              st.tuples(st.sampled_from(_MEMBERS), lone_surrogate_json).map(_as_member)),
    st.binary(max_size=60).map(lambda data: b'{"client_name": "' + data + b'\xff"}'),  # not UTF-8
)

# One member's value as raw JSON text: a string holding a lone surrogate, a value nested past the
# recursion limit, or a string that is not UTF-8 (the body then is not UTF-8 either).
hostile_member = st.one_of(
    st.sampled_from(SURROGATES).map(lambda escape: f'"a{escape}b"'.encode()),
    deep_json.map(str.encode),
    st.binary(max_size=20).map(lambda data: b'"' + data.replace(b'"', b"").replace(b"\\", b"") + b'\xff"'),
)


def _basic(credentials: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


# HTTP Basic credentials (RFC 7617) that are not UTF-8, not base64, or not "id:secret".
hostile_basic_header = st.one_of(
    st.tuples(st.binary(max_size=20), st.binary(max_size=20)).map(lambda p: _basic(p[0] + b"\xff:" + p[1])),
    st.binary(min_size=1, max_size=40).map(_basic),
    st.sampled_from([{"Authorization": "Basic"}, {"Authorization": "Basic !!!"}, {"Authorization": "Basic é"},
                     {"Authorization": "basic " + base64.b64encode(b"id%ff:secret").decode()},
                     {"Authorization": "Basic " + base64.b64encode(b"id\x00:secret").decode()}]),
)


@contextmanager
def server_recursion_limit() -> Iterator[None]:
    """Hypothesis raises the recursion limit while a test runs (by 2,000 frames), which hides
    exactly the failures these strategies look for: make the request under a server's limit."""
    raised = sys.getrecursionlimit()
    sys.setrecursionlimit(DEFAULT_RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(raised)
