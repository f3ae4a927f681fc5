"""Granting and checking consent: plain functions over a SQLAlchemy session.

The ``openid`` scope is the act of signing in itself and needs no consent; every other
scope must have been granted to the agency by the citizen, and is re-checked whenever a
token is issued or refreshed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.errors import ConsentMissing
from consent.models import Consent
from idp.db import utcnow

SCOPES_WITHOUT_CONSENT = frozenset({"openid"})


def find_consent(session: Session, account_id: str, agency_id: str) -> Consent | None:
    return session.scalar(select(Consent).where(Consent.account_id == account_id, Consent.agency_id == agency_id))


def undecided_scopes(consent: Consent | None, requested: Iterable[str], now: dt.datetime | None = None) -> set[str]:
    """Scopes the citizen has neither granted nor refused to this agency (they must be asked)."""
    wanted = set(requested) - SCOPES_WITHOUT_CONSENT
    if consent is None or not consent.is_active(now or utcnow()):
        return wanted
    return wanted - consent.granted - consent.denied


def record_decision(
    session: Session, account_id: str, agency_id: str, granted: Iterable[str], denied: Iterable[str]
) -> Consent:
    """Remember a decision made on the consent page, merging it into the standing consent."""
    granted_set = set(granted) - SCOPES_WITHOUT_CONSENT
    denied_set = (set(denied) - SCOPES_WITHOUT_CONSENT) - granted_set
    consent = find_consent(session, account_id, agency_id)
    now = utcnow()
    if consent is None:
        consent = Consent(account_id=account_id, agency_id=agency_id, granted_scopes="", denied_scopes="",
                          granted_at=now)
        session.add(consent)
    elif not consent.is_active(now):
        consent.granted_scopes, consent.denied_scopes = "", ""
        consent.withdrawn_at, consent.expires_at, consent.granted_at = None, None, now
    consent.granted_scopes = _join((consent.granted - denied_set) | granted_set)
    consent.denied_scopes = _join((consent.denied - granted_set) | denied_set)
    session.flush()
    return consent


def consented_scopes(session: Session, account_id: str, agency_id: str, requested: Iterable[str]) -> set[str]:
    """The part of ``requested`` the citizen still allows; raises if nothing beyond ``openid`` stands."""
    wanted = set(requested)
    consent = find_consent(session, account_id, agency_id)
    active = consent is not None and consent.is_active(utcnow())
    allowed = (wanted & consent.granted) if active and consent else set()
    if not active and wanted - SCOPES_WITHOUT_CONSENT:
        raise ConsentMissing("the citizen's consent for this agency has ended")
    return allowed | (wanted & SCOPES_WITHOUT_CONSENT)


def _join(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))
