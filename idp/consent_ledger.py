"""The consent ledger as the service uses it: built from the settings and the keyring, plus the
events only ``idp`` can see — disclosures at token issuance, and what a withdrawal must undo."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.consents import record_use
from consent.events import EventType
from consent.ledger import CheckpointPolicy, Ledger
from consent.notes import origin_for
from consent.pseudonyms import pseudonym_for
from idp.backchannel import queue_logout
from idp.config import Settings
from idp.models import Client
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


def record_disclosure(session: Session, ledger: Ledger, client: Client, account_id: str, scope: str) -> None:
    """consent-ledger.md ``disclosure``: the claims a token lets the client read, at issuance."""
    scopes = sorted(set(scope.split()))
    claims = sorted({claim for name in scopes for claim in SCOPE_CLAIMS.get(name, ())})
    fields: dict[str, object] = {
        "subject": pseudonym_for(session, account_id), "agency": client.agency_id, "client": client.client_id,
        "scopes": scopes, "claims": claims, "basis": "statutory" if client.statutory_basis else "consent",
    }
    if client.statutory_basis:
        fields["legal_basis"] = client.statutory_basis
    ledger.append(session, EventType.DISCLOSURE, fields)
    record_use(session, account_id, client.agency_id)


def revoke_agency_tokens(session: Session, account_id: str, agency_id: str) -> None:
    """What a withdrawal undoes at the agency (consent.consents.TokenRevoker): every refresh and
    access token of the agency's clients for the citizen, and their sessions by back-channel logout."""
    client_ids = list(session.scalars(select(Client.client_id).where(Client.agency_id == agency_id)))
    revoke_families_of(session, account_id=account_id, client_ids=client_ids, reason="consent_withdrawn")
    queue_logout(session, account_id=account_id, client_ids=client_ids, event=f"withdrawn:{uuid.uuid4()}")
