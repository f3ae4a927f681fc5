"""The consent ledger as the service uses it: built from the settings and the keyring, plus the
events only ``idp`` can see — disclosures at token issuance, and what a withdrawal must undo.

A disclosure is appended when the issuing transaction commits, as its last statements: the
append locks the ledger head (one row, shared by every token request), so the lock is then held
only for the append and the commit, not for the rest of the request (signing the ID token,
building the response). It is still the same transaction (consent-ledger.md): a rollback
drops the disclosure together with the tokens.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Select, event, select
from sqlalchemy.orm import Session, SessionTransaction

from consent.consents import record_use
from consent.events import EventType
from consent.ledger import CheckpointPolicy, Ledger
from consent.notes import origin_for
from consent.pseudonyms import pseudonym_for, pseudonym_from
from idp.backchannel import queue_logout
from idp.config import Settings
from idp.models import Account, Client, TokenFamily
from idp.oauth.claims import SCOPE_CLAIMS
from idp.oauth.tokens import revoke_families_of
from keys.keyring import Keyring


def ledger_for(settings: Settings, keyring: Keyring) -> Ledger:
    policy = CheckpointPolicy(entries=settings.ledger_checkpoint_entries, seconds=settings.ledger_checkpoint_seconds)
    return Ledger(keyring, origin_for(settings.issuer), policy)


def ledger() -> Ledger:
    """The ledger of the running app (inside a request or app context)."""
    from idp.services import services

    return ledger_for(services().settings, services().keyring)


def record_disclosure(session: Session, ledger: Ledger, client: Client, account: Account, scope: str) -> None:
    """consent-ledger.md ``disclosure``: the claims a token lets the client read, at issuance.

    Everything but the append itself is done now; the append waits for the commit (see above).
    """
    scopes = sorted(set(scope.split()))
    claims = sorted({claim for name in scopes for claim in SCOPE_CLAIMS.get(name, ())})
    fields: dict[str, object] = {
        "subject": _pseudonym(session, account, client.agency_id), "agency": client.agency_id,
        "client": client.client_id, "scopes": scopes, "claims": claims,
        "basis": "statutory" if client.statutory_basis else "consent",
    }
    if client.statutory_basis:
        fields["legal_basis"] = client.statutory_basis
    record_use(session, account.id, client.agency_id)
    session.info.setdefault(_AT_COMMIT, []).append((ledger, fields))


def _pseudonym(session: Session, account: Account, agency_id: str) -> str:
    """Pairwise for the agency; no query when the account's secret is already loaded."""
    if account.ledger_secret is not None:
        return pseudonym_from(account.ledger_secret, agency_id)
    return pseudonym_for(session, account.id, agency_id)


_AT_COMMIT = "idp.disclosures_at_commit"


@event.listens_for(Session, "before_commit")
def _append_disclosures(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: wait for the transaction itself
    for ledger, fields in session.info.pop(_AT_COMMIT, []):
        ledger.append(session, EventType.DISCLOSURE, fields)


@event.listens_for(Session, "after_soft_rollback")
def _forget_disclosures(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction, not a savepoint inside it
        session.info.pop(_AT_COMMIT, None)


class AgencyTokens:
    """What a withdrawal undoes at the agency (consent.consents.TokenRevoker): every refresh and
    access token of the agency's clients for the citizen, and their sessions by back-channel logout."""

    def lock(self, session: Session, account_id: str, agency_id: str) -> None:
        """The citizen's live token families at the agency, in id order (PostgreSQL row locks)."""
        session.execute(select(TokenFamily.id)
                        .where(TokenFamily.account_id == account_id, TokenFamily.revoked_at.is_(None),
                               TokenFamily.client_id.in_(_clients_of(agency_id)))
                        .order_by(TokenFamily.id).with_for_update())

    def revoke(self, session: Session, account_id: str, agency_id: str) -> None:
        """Every live family, including any issued while the withdrawal waited for the consent row."""
        client_ids = list(session.scalars(_clients_of(agency_id)))
        revoke_families_of(session, account_id=account_id, client_ids=client_ids, reason="consent_withdrawn")
        queue_logout(session, account_id=account_id, client_ids=client_ids, event=f"withdrawn:{uuid.uuid4()}")


def _clients_of(agency_id: str) -> Select[str]:
    return select(Client.client_id).where(Client.agency_id == agency_id)


agency_tokens = AgencyTokens()
