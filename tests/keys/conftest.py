"""Fixtures for the keyring tests: an empty key table, a KEK, a keyring and a controllable clock."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from keys.encryption import KeyEncryptor
from keys.keyring import Keyring
from keys.models import SigningKey

ISSUER = "https://idp.example.gov"
AUDIENCE = "client-123"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def db_session(db_session: Session) -> Session:
    """The shared per-test session, minus any keys made beforehand (e.g. by the app fixtures).

    The DELETE is committed, which inside the per-test transaction only releases a SAVEPOINT:
    the outer rollback restores the keys, and a test's own rollback does not bring them back.
    """
    db_session.execute(delete(SigningKey))
    db_session.commit()
    return db_session


@pytest.fixture
def encryptor() -> KeyEncryptor:
    return KeyEncryptor(os.urandom(32))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keyring(encryptor: KeyEncryptor, clock: FakeClock, db_session: Session) -> Keyring:
    """A keyring whose keys exist (``ensure`` has run in this test's transaction)."""
    ring = Keyring(encryptor, cache_seconds=30, clock=clock)
    ring.ensure(db_session)
    return ring
