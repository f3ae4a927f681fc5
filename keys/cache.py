"""Caches for the keyring: parsed key objects (process-wide) and key states (per keyring).

* Key *material* never changes for a given ``kid`` (the kid is its thumbprint), so parsed
  public keys and decrypted private keys are cached for the life of the process. Private
  keys are additionally keyed by the KEK fingerprint: a keyring holding another KEK must
  decrypt (and fail) on its own rather than reuse a key another keyring opened.
* Key *states* do change (rotation), so each keyring caches a snapshot of its rows for at
  most ``ttl`` seconds of a monotonic clock; every node sees a rotation within that bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from keys.jwk import PrivateKey, PublicKey

T = TypeVar("T")

_lock = threading.Lock()
_public_keys: dict[str, PublicKey] = {}
_private_keys: dict[tuple[str, str], PrivateKey] = {}


def public_key(kid: str, load: Callable[[], PublicKey]) -> PublicKey:
    cached = _public_keys.get(kid)
    if cached is None:
        cached = load()  # parsed outside the lock; a racing thread's result is equivalent
        with _lock:
            cached = _public_keys.setdefault(kid, cached)
    return cached


def private_key(kek_fingerprint: str, kid: str, load: Callable[[], PrivateKey]) -> PrivateKey:
    cached = _private_keys.get((kek_fingerprint, kid))
    if cached is None:
        cached = load()
        with _lock:
            cached = _private_keys.setdefault((kek_fingerprint, kid), cached)
    return cached


def forget_private_keys(kids: Iterable[str]) -> None:
    """Drop decrypted private keys from memory (used when keys are removed)."""
    doomed = set(kids)
    with _lock:
        for entry in [entry for entry in _private_keys if entry[1] in doomed]:
            del _private_keys[entry]


def clear() -> None:
    with _lock:
        _public_keys.clear()
        _private_keys.clear()


class StateCache(Generic[T]):
    """One value, reloaded when older than ``ttl`` seconds; ``ttl == 0`` disables caching."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entry: tuple[float, T] | None = None

    def get(self, load: Callable[[], T]) -> T:
        if self._ttl <= 0:
            return load()
        entry = self._entry
        if entry is not None and self._clock() - entry[0] < self._ttl:
            return entry[1]
        with self._lock:  # one refill at a time; late arrivals reuse the fresh entry
            entry = self._entry
            if entry is None or self._clock() - entry[0] >= self._ttl:
                entry = (self._clock(), load())
                self._entry = entry
            return entry[1]

    def invalidate(self) -> None:
        self._entry = None
