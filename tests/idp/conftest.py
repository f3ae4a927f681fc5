"""Fixtures shared by the delegation tests of tests/idp: two people (the ledger is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from idp.models import Account
from tests.idp.delegation_flows import person


@pytest.fixture
def mary(db_session: Session) -> Account:
    return person(db_session, "Mary")


@pytest.fixture
def carol(db_session: Session) -> Account:
    return person(db_session, "Carol")
