"""Fixtures shared by the delegation tests of tests/idp: the ledger and two people."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from consent.ledger import Ledger
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.models import Account
from idp.services import Services
from tests.idp.delegation_flows import person


@pytest.fixture
def ledger(settings: Settings, base_services: Services) -> Ledger:
    return ledger_for(settings, base_services.keyring)


@pytest.fixture
def mary(db_session: Session) -> Account:
    return person(db_session, "Mary")


@pytest.fixture
def carol(db_session: Session) -> Account:
    return person(db_session, "Carol")
