"""The ``disclosure`` ledger entry of a token issuance is appended when the issuing transaction
commits, in that transaction (consent-ledger.md): never without the tokens, never lost with them."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consent.ledger import Ledger
from consent.models import LedgerEntry
from idp.consent_ledger import record_disclosure
from idp.models import Account
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _disclosures(session: Session) -> int:
    return session.scalar(select(func.count()).where(LedgerEntry.type == "disclosure")) or 0


def test_a_disclosure_is_appended_when_its_transaction_commits(db_session: Session, rp: RegisteredClient,
                                                               citizen: Account, ledger: Ledger) -> None:
    before = _disclosures(db_session)
    record_disclosure(db_session, ledger, rp.model, citizen, "openid email")
    assert _disclosures(db_session) == before  # not yet: the head is locked only at the commit
    db_session.commit()
    assert _disclosures(db_session) == before + 1


def test_a_rolled_back_issuance_leaves_no_disclosure_behind(db_session: Session, rp: RegisteredClient,
                                                            citizen: Account, ledger: Ledger) -> None:
    before = _disclosures(db_session)
    record_disclosure(db_session, ledger, rp.model, citizen, "openid email")
    db_session.rollback()
    db_session.commit()  # the next transaction of the same session does not inherit it
    assert _disclosures(db_session) == before


def test_each_token_response_is_logged_once(client: FlaskClient, db_session: Session, rp: RegisteredClient,
                                            signed_in: Account) -> None:
    tokens = flows.tokens_for(client, rp, scope="openid email offline_access")
    after_code = _disclosures(db_session)
    flows.refresh(client, rp, tokens["refresh_token"])
    assert _disclosures(db_session) == after_code + 1
