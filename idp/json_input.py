"""Strict JSON for everything a caller sends us (RFC 8259), parsed in one place.

Python's ``json`` accepts what no protocol here needs and some of what we cannot survive:
any nesting depth (it recurses once per level, so ~1,000 ``[`` raise ``RecursionError``, a 500),
lone surrogate escapes such as ``"\\ud800"`` (RFC 8259 §8.2: "unpaired surrogates"; no UTF-8
encoder, so neither database driver, can store one), ``NaN`` and ``Infinity`` (not JSON, §6), and
UTF-16/32 bodies (§8.1: JSON exchanged between systems MUST be UTF-8).

Every JSON entry point parses with :func:`loads`: request bodies (``request.get_json``, through
:class:`StrictJSONProvider`), the ``claims`` parameter (OIDC Core §5.5), client assertions before
their signature is checked (RFC 7523), WebAuthn ``clientDataJSON``. Each maps :class:`UnsafeJSON`
to its protocol's 400.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Final

from flask.json.provider import DefaultJSONProvider

# Our deepest legitimate document is 4 levels (a JWKS inside registration metadata, a claims
# request with its per-claim objects); 32 leaves room for any sane client and is far from the
# recursion limit.
MAX_DEPTH: Final = 32

_STRINGS: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)  # disjoint alternatives: linear time
_NOT_BRACKETS: Final = re.compile(r"[^\[\]{}]+")
_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE: Final = re.compile("[\ud800-\udfff]")  # json joins valid pairs, so any left is lone


class UnsafeJSON(ValueError):
    """Not strict JSON: not UTF-8, nested deeper than MAX_DEPTH, a lone surrogate, or not JSON."""


def loads(data: str | bytes) -> Any:
    """Parse JSON text strictly (RFC 8259 §6, §8.1, §8.2) with nesting at most ``MAX_DEPTH``."""
    text = _utf8_text(data)
    if _depth(text) > MAX_DEPTH:
        raise UnsafeJSON(f"The JSON is nested more than {MAX_DEPTH} levels deep.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as error:
        raise UnsafeJSON(f"The body is not valid JSON: {error}") from None
    if _has_lone_surrogate(value):
        raise UnsafeJSON("The JSON contains an unpaired surrogate (RFC 8259 §8.2).")
    return value


def _utf8_text(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")  # strict: invalid bytes and encoded surrogates are refused
    except UnicodeDecodeError:
        raise UnsafeJSON("The JSON is not UTF-8 (RFC 8259 §8.1).") from None


def _depth(text: str) -> int:
    """The deepest bracket nesting outside strings (an upper bound on the parsed depth)."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return max(accumulate(_STEP[char] for char in brackets), default=0)


def _refuse_constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a JSON value.")


def _has_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:  # a loop, not recursion: the depth is bounded, but nothing here needs the stack
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class StrictJSONProvider(DefaultJSONProvider):
    """The app's JSON provider: everything Flask parses (``request.get_json``, the session
    cookie) goes through :func:`loads`; what it writes is unchanged."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:  # nothing in Flask passes any; refuse rather than silently drop them
            raise TypeError(f"unsupported arguments: {sorted(kwargs)}")
        return loads(s)
