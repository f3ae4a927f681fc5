"""A keyring that finds no key: it raises the one missing-key error, and never caches "no key"."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from keys.encryption import KeyEncryptor
from keys.errors import NoSigningKeyError
from keys.keyring import Keyring
from keys.models import SigningKey
from tests.keys.conftest import FakeClock


def test_a_key_made_after_a_miss_is_used_at_once_whatever_the_cache(
        db_session: Session, encryptor: KeyEncryptor, clock: FakeClock) -> None:
    node = Keyring(encryptor, cache_seconds=3600, clock=clock, algs=("ES256",))
    with pytest.raises(NoSigningKeyError):
        node.signing_key(db_session, "ES256")
    with pytest.raises(NoSigningKeyError):
        node.ledger_signing_key(db_session)
    Keyring(encryptor, cache_seconds=0, algs=("ES256",)).ensure(db_session)  # another node, or `idp db upgrade`
    assert node.signing_key(db_session, "ES256").alg == "ES256"  # the clock has not moved
    assert node.ledger_signing_key(db_session).alg == "EdDSA"


def test_ensure_after_another_ensure_creates_nothing_more(db_session: Session, encryptor: KeyEncryptor) -> None:
    Keyring(encryptor, cache_seconds=0, algs=("ES256",)).ensure(db_session)
    Keyring(encryptor, cache_seconds=0, algs=("ES256",)).ensure(db_session)
    states = sorted(tuple(row) for row in db_session.execute(select(SigningKey.purpose, SigningKey.state)))
    assert states == [("ledger", "current"), ("token", "current"), ("token", "next")]
