"""C2SP ``signed-note`` signing and C2SP ``tlog-checkpoint`` text, with Ed25519 keys.

Verification lives in ``consent.verify`` (standard library + cryptography only), which this
module shares its key-hash rule with, so signer and verifier cannot drift apart.
"""

from __future__ import annotations

import base64
from typing import Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consent.verify import ED25519_TYPE, SIGNATURE_DASH, key_hash

ORIGIN_SUFFIX = "/consent-ledger"


def origin_for(issuer: str) -> str:
    """consent-ledger.md: the checkpoint origin is the issuer's host followed by ``/consent-ledger``."""
    host = urlsplit(issuer).netloc
    if not host:
        raise ValueError(f"issuer {issuer!r} has no host")
    return host + ORIGIN_SUFFIX


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    """C2SP tlog-checkpoint body: origin, decimal tree size, base64 root hash, one per line."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


class Signer(Protocol):
    """An Ed25519 signer: ``keys.keyring.LedgerSigner`` in the service (the private key stays in
    keys/); cryptography's ``Ed25519PrivateKey`` has the same two methods, for tools and tests."""

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> Ed25519PublicKey: ...


def sign_note(text: str, name: str, signer: Signer) -> str:
    """C2SP signed-note: text, a blank line, then ``— <name> base64(key hash || signature)``."""
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("a note's text ends with a newline and has no blank lines")
    public = raw_public_key(signer.public_key())
    blob = key_hash(name, public) + signer.sign(text.encode())
    return f"{text}\n{SIGNATURE_DASH}{name} {base64.b64encode(blob).decode()}\n"


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """C2SP signed-note verifier key: ``name+hex(key hash)+base64(0x01 || key)``."""
    public = raw_public_key(public_key)
    return f"{name}+{key_hash(name, public).hex()}+{base64.b64encode(ED25519_TYPE + public).decode()}"
