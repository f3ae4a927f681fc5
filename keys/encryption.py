"""Encryption at rest of private signing keys (AES-256-GCM under a key-encryption key), and of
other secrets under keys derived from it (:func:`for_purpose`).

Blob layout: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. The caller passes the
key's ``kid`` (or the row's identity) as associated data, so a ciphertext copied onto another
row fails to decrypt.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys.errors import KeyDecryptionError

KEK_BYTES = 32  # AES-256
NONCE_BYTES = 12  # NIST SP 800-38D §8.2: 96-bit random IVs
TAG_BYTES = 16


class KeyEncryptor:
    """Seals and opens private-key bytes with one key-encryption key (KEK)."""

    def __init__(self, kek: bytes) -> None:
        if not isinstance(kek, bytes) or len(kek) != KEK_BYTES:
            raise ValueError(f"the key-encryption key must be exactly {KEK_BYTES} bytes")
        self._aead = AESGCM(kek)
        # A one-way label for the KEK, so caches can tell KEKs apart without holding the KEK.
        self.fingerprint = hashlib.sha256(b"keys.kek-fingerprint\x00" + kek).hexdigest()[:32]

    def __repr__(self) -> str:
        return f"KeyEncryptor(fingerprint={self.fingerprint!r})"

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, *, aad: bytes) -> bytes:
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise KeyDecryptionError("encrypted key blob is truncated")
        nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise KeyDecryptionError("wrong KEK, wrong row or tampered ciphertext") from None


def for_purpose(kek: bytes, purpose: str) -> KeyEncryptor:
    """An encryptor for secrets other than private keys (e.g. ``"outbox-body"``), under a key of its
    own derived from the KEK with HKDF-SHA256 (RFC 5869 §2, ``info`` naming the purpose): a blob
    sealed for one purpose never opens as another, and the database alone opens none of them."""
    return KeyEncryptor(derive_key(kek, purpose))


def derive_key(kek: bytes, purpose: str) -> bytes:
    """A 32-byte key of its own for ``purpose``, derived from the KEK with HKDF-SHA256 (RFC 5869 §2,
    ``info`` naming the purpose): one purpose's key says nothing of another's, nor of the KEK."""
    if not isinstance(kek, bytes) or len(kek) != KEK_BYTES:
        raise ValueError(f"the key-encryption key must be exactly {KEK_BYTES} bytes")
    info = b"keys.purpose\x00" + purpose.encode()
    return HKDF(algorithm=SHA256(), length=KEK_BYTES, salt=None, info=info).derive(kek)
