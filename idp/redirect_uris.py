"""Redirect URI matching beyond exact string comparison: the one exception RFC 9700 §4.1.3 allows.

RFC 8252 §7.3: "The authorization server MUST allow any port to be specified at the time of the
request for loopback IP redirect URIs", because a native app listens on whatever ephemeral port
the operating system gives it. Decided, and why:

* only the loopback IP literals ``127.0.0.1`` and ``[::1]`` over ``http``: §8.3 calls ``localhost``
  NOT RECOMMENDED (it may resolve elsewhere, and a firewall may treat it differently), so a
  registered ``http://localhost/...`` still matches exactly;
* only for public clients (``token_endpoint_auth_method=none``): the exception is for native
  apps (RFC 9700 §4.1.3 "native apps using a localhost URI"), which are public clients (RFC 8252
  §8.4); a confidential web client keeps exact matching even on loopback;
* everything but the port must be identical: scheme, host, path and query; no userinfo, no
  fragment. At the token endpoint the code's redirect URI, port included, must still be sent
  unchanged (RFC 6749 §4.1.3), so the port chosen at authorization is the one that counts.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

_LOOPBACK_AUTHORITY: Final = re.compile(r"(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?")
MAX_PORT: Final = 65535


def matches_loopback_any_port(registered: str, given: str) -> bool:
    """True if ``registered`` is an http loopback IP literal URI and ``given`` differs from it
    at most in its port (RFC 8252 §7.3)."""
    try:
        ours, theirs = urlsplit(registered), urlsplit(given)
    except ValueError:  # e.g. an unclosed "[" in the request's URI
        return False
    our_host, their_host = _loopback_host(ours.netloc), _loopback_host(theirs.netloc)
    if ours.scheme != "http" or our_host is None or their_host != our_host:
        return False
    return (theirs.scheme, theirs.path, theirs.query, theirs.fragment) == ("http", ours.path, ours.query, ours.fragment)


def _loopback_host(authority: str) -> str | None:
    match = _LOOPBACK_AUTHORITY.fullmatch(authority)
    if match is None or (match.group(2) is not None and not 0 < int(match.group(2)) <= MAX_PORT):
        return None
    return match.group(1)
