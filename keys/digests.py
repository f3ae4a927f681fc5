"""The one way a secret we issue is stored: its SHA-256 digest (security.md "Secrets and data").

Every token, link secret and client secret the service hands out carries at least 128 bits from
``secrets`` (most 256), so one unsalted SHA-256 cannot be reversed or guessed from a database
read and a slow password hash would only cost CPU; lookups stay an index on the digest. A secret
that is short (a 6-digit email code) gets :func:`keyed_digest` instead, under a key derived from the
KEK, prefixed with its row's id by the caller, so equal codes of two rows never share a digest.
"""

from __future__ import annotations

import hashlib
import hmac


def secret_digest(secret: str) -> str:
    """Hex SHA-256 of the UTF-8 secret: what is stored, and compared, instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def keyed_digest(key: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of a secret too short to survive a brute force of its plain digest (a 6-digit
    code has 10^6 values, tried in a second): without ``key``, which the database does not hold, a
    stored digest reveals nothing (security.md "Secrets and data")."""
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
