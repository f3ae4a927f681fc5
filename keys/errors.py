"""Exceptions raised by the ``keys`` package.

The names avoid ``KeyError`` on purpose: a missing *signing* key is not a missing mapping
entry, and catching the builtin by accident would hide real bugs.
"""

from __future__ import annotations


class KeyringError(Exception):
    """Base class for every error raised by the ``keys`` package."""


class KeyDecryptionError(KeyringError):
    """An encrypted private key could not be decrypted: wrong KEK, wrong row or tampering."""


class NoSigningKeyError(KeyringError):
    """No usable signing key exists for the requested algorithm or purpose (token or ledger).

    The one missing-key error: ``idp.errors`` answers it with a 503, JSON or an error page."""


class TokenVerificationError(KeyringError):
    """A JWT was rejected; the message says why, but callers should not echo it to clients."""
