"""Fixtures of the consent domain: a ledger key held in memory (the service's ledger is in tests/conftest.py)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from keys.jwk import public_jwk_members, thumbprint
from keys.keyring import LedgerSigner


class MemoryKeys:
    """A ledger key held in memory: for ledgers outside the app (concurrency tests, the benchmark)."""

    def __init__(self) -> None:
        self.private_key = Ed25519PrivateKey.generate()
        self.key = LedgerSigner(thumbprint(public_jwk_members(self.private_key.public_key())), self.private_key)

    def ledger_signing_key(self, session: Session) -> LedgerSigner:
        return self.key

    def ledger_public_keys(self, session: Session) -> dict[str, Ed25519PublicKey]:
        return {self.key.kid: self.key.public_key()}
