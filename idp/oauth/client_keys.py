"""The keys of clients registered with a ``jwks_uri`` (RFC 7591 §2), fetched through
:mod:`idp.outbound` and cached per client (security.md "server-side request forgery").

Keys are kept ``KEYS_TTL`` seconds and a failure ``FAILURE_TTL`` seconds, so a client whose URI is
slow, huge or refused cannot make every token request fetch it again; and one fetch per client runs
at a time (another request for that client meanwhile gets :class:`OutboundBusy` at once rather than
a second fetch or a wait). Per process a client costs at most one fetch per ``FAILURE_TTL`` while
its URI fails, one per ``KEYS_TTL`` while it works. Entries are per client *and* URI, so a changed
``jwks_uri`` (RFC 7592 §2.2) is fetched at once.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any, Final

from idp.outbound import DestinationPolicy, DestinationRefused, FetchFailed, OutboundBusy, fetch

KEYS_TTL: Final = 300
FAILURE_TTL: Final = 30


class KeysUnavailable(Exception):
    """The client's ``jwks_uri`` gave no usable JWK Set (now, or within ``FAILURE_TTL``)."""


@dataclasses.dataclass(frozen=True)
class _Entry:
    fetched_at: float
    jwks: dict[str, Any] | None
    failure: str | None = None

    def fresh(self, now: float) -> bool:
        return now - self.fetched_at < (KEYS_TTL if self.failure is None else FAILURE_TTL)

    def value(self) -> dict[str, Any]:
        if self.jwks is None:
            raise KeysUnavailable(self.failure)
        return self.jwks


class ClientKeyCache:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._fetching: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def keys(self, client_id: str, jwks_uri: str, policy: DestinationPolicy) -> dict[str, Any]:
        """The client's JWK Set; raises KeysUnavailable, or OutboundBusy (not remembered)."""
        key = (client_id, jwks_uri)
        cached = self._cached_or_claim(key)
        if cached is not None:
            return cached.value()
        entry: _Entry | None = None
        try:
            entry = _fetch_entry(jwks_uri, policy)
        finally:
            self._release(key, entry)
        return entry.value()

    def _cached_or_claim(self, key: tuple[str, str]) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.fresh(time.monotonic()):
                return entry
            if key in self._fetching:
                raise OutboundBusy("the client's keys are being fetched by another request")
            self._fetching.add(key)
            return None

    def _release(self, key: tuple[str, str], entry: _Entry | None) -> None:
        with self._lock:
            self._fetching.discard(key)
            if entry is not None:
                now = time.monotonic()
                self._entries = {k: e for k, e in self._entries.items() if e.fresh(now)}
                self._entries[key] = entry


def _fetch_entry(jwks_uri: str, policy: DestinationPolicy) -> _Entry:
    now = time.monotonic()
    try:
        reply = fetch(jwks_uri, policy)
    except (DestinationRefused, FetchFailed) as error:
        return _Entry(now, None, f"The client's jwks_uri {error}.")
    if reply.status != 200:
        return _Entry(now, None, f"The client's jwks_uri answered HTTP {reply.status}.")
    try:
        jwks = json.loads(reply.body)
    except (ValueError, RecursionError):
        jwks = None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        return _Entry(now, None, "The client's jwks_uri did not answer with a JWK Set.")
    return _Entry(now, jwks)
