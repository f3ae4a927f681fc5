"""Granting, checking, withdrawing and expiring consent: plain functions over a SQLAlchemy session.

The ``openid`` scope is the act of signing in itself and needs no consent; every other
scope must have been granted to the agency by the citizen, and is re-checked whenever a
token is issued or refreshed. Every transition appends its ledger event in the caller's
transaction (consent-ledger.md). The lifecycle of one (citizen, agency) consent::

    (none) ─record_decision─▶ active ─withdraw_consent─▶ withdrawn ─record_decision─▶ active
                                │
                                └─expire_consents (expires_at passed)─▶ expired ─record_decision─▶ active

Withdrawing needs an active consent; expiring needs one whose ``expires_at`` has passed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, bindparam, or_, select, update
from sqlalchemy.orm import Session

from consent.errors import ConsentMissing, ConsentNotActive
from consent.events import EventType, format_time
from consent.ledger import Ledger
from consent.models import Consent
from consent.pseudonyms import pseudonym_for
from store.db import run, utcnow

SCOPES_WITHOUT_CONSENT = frozenset({"openid"})
DEFAULT_CONSENT_DAYS = 365
USE_RECORDED_EVERY = dt.timedelta(minutes=1)


class TokenRevoker(Protocol):
    """The agency's tokens for the citizen, as a withdrawal ends them: ``idp`` supplies it, so
    this package stays free of token storage while a withdrawal can never skip the revocation.

    ``lock`` comes before the consent row is touched: a refresh locks its token family, then
    reads the consent (shared), so a withdrawal that took the consent first and the family second
    would deadlock with it. ``revoke`` comes after, and also ends what was issued meanwhile.
    """

    def lock(self, session: Session, account_id: str, agency_id: str) -> None: ...

    def revoke(self, session: Session, account_id: str, agency_id: str) -> None: ...


def find_consent(session: Session, account_id: str, agency_id: str) -> Consent | None:
    return session.scalar(select(Consent).where(Consent.account_id == account_id, Consent.agency_id == agency_id))


def consents_of(session: Session, account_id: str) -> list[Consent]:
    query = select(Consent).where(Consent.account_id == account_id).order_by(Consent.granted_at)
    return list(session.scalars(query))


def undecided_scopes(consent: Consent | None, requested: Iterable[str], now: dt.datetime | None = None) -> set[str]:
    """Scopes the citizen has neither granted nor refused to this agency (they must be asked)."""
    wanted = set(requested) - SCOPES_WITHOUT_CONSENT
    if consent is None or not consent.is_active(now or utcnow()):
        return wanted
    return wanted - consent.granted - consent.denied


def record_decision(
    session: Session, account_id: str, agency_id: str, granted: Iterable[str], denied: Iterable[str], *,
    ledger: Ledger, client_id: str, purpose: str | None = None, days: int = DEFAULT_CONSENT_DAYS,
) -> Consent:
    """Remember a decision made on the consent page, merging it into the standing consent.

    Any decision renews the consent for ``days``; the ``consent.granted`` entry records the
    resulting standing consent (granted and denied scopes, purpose, expiry).
    """
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
        consent.withdrawn_at, consent.expired_at, consent.granted_at = None, None, now
    consent.granted_scopes = _join((consent.granted - denied_set) | granted_set)
    consent.denied_scopes = _join((consent.denied - granted_set) | denied_set)
    consent.purpose, consent.expires_at = purpose, now + dt.timedelta(days=days)
    session.flush()
    ledger.append(session, EventType.CONSENT_GRANTED, {
        "subject": pseudonym_for(session, account_id, agency_id), "agency": agency_id, "client": client_id,
        "scopes": sorted(consent.granted), "denied": sorted(consent.denied), "purpose": purpose,
        "expires": format_time(consent.expires_at),
    })
    return consent


def withdraw_consent(session: Session, account_id: str, agency_id: str, *, ledger: Ledger,
                     revoke_tokens: TokenRevoker) -> Consent:
    """active → withdrawn: end the consent, revoke the agency's tokens, append ``consent.withdrawn``."""
    consent = find_consent(session, account_id, agency_id)
    now = utcnow()
    if consent is None or not consent.is_active(now):
        raise ConsentNotActive("there is no active consent to withdraw")
    revoke_tokens.lock(session, account_id, agency_id)  # first: the same lock order as a refresh
    _claim(session, consent, withdrawn_at=now)
    revoke_tokens.revoke(session, account_id, agency_id)
    ledger.append(session, EventType.CONSENT_WITHDRAWN, {
        "subject": pseudonym_for(session, account_id, agency_id), "agency": agency_id,
        "scopes": sorted(consent.granted),
    })
    return consent


def expire_consents(session: Session, *, ledger: Ledger, now: dt.datetime | None = None, limit: int = 500) -> int:
    """active → expired for consents past ``expires_at``: append ``consent.expired`` once for each.

    Tokens need no revocation here: every refresh re-checks consent, and access tokens are short.
    """
    now = now or utcnow()
    due = select(Consent).where(Consent.withdrawn_at.is_(None), Consent.expired_at.is_(None),
                                Consent.expires_at <= now).order_by(Consent.expires_at).limit(limit)
    count = 0
    for consent in session.scalars(due).all():
        if _claim(session, consent, expired_at=now, must_be_due=now):
            ledger.append(session, EventType.CONSENT_EXPIRED, {
                "subject": pseudonym_for(session, consent.account_id, consent.agency_id),
                "agency": consent.agency_id, "scopes": sorted(consent.granted),
            })
            count += 1
    return count


def _claim(session: Session, consent: Consent, *, must_be_due: dt.datetime | None = None,
           **values: dt.datetime) -> bool:
    """Make the transition atomically, so two concurrent requests cannot both record it."""
    query = update(Consent).where(Consent.id == consent.id, Consent.withdrawn_at.is_(None),
                                  Consent.expired_at.is_(None))
    if must_be_due is not None:
        query = query.where(Consent.expires_at <= must_be_due)
    result = cast(CursorResult[Any], session.execute(query.values(**values)))  # an UPDATE's result has a rowcount
    claimed = result.rowcount == 1
    if must_be_due is None and not claimed:
        raise ConsentNotActive("the consent was withdrawn or expired meanwhile")
    session.refresh(consent)
    return claimed


def record_use(session: Session, account_id: str, agency_id: str) -> None:
    """Tokens were issued under the consent: the dashboard's "last used" (shown to the minute).

    Written at most once a minute, and skipped while another token request holds the row (SKIP
    LOCKED): token requests of one citizen with one agency neither queue on the consent row nor
    deadlock on it (each holds it shared, from ``consented_scopes``, until it commits).
    """
    now = utcnow()
    run(session, _RECORD_USE, {"account": account_id, "agency": agency_id, "now": now,
                               "stale": now - USE_RECORDED_EVERY})


def consented_scopes(session: Session, account_id: str, agency_id: str, requested: Iterable[str]) -> set[str]:
    """The part of ``requested`` the citizen still allows; raises if nothing beyond ``openid`` stands.

    The consent row is read FOR SHARE and held until the token request commits: a withdrawal (an
    UPDATE of the row) waits for tokens being issued under the consent, then finds and revokes
    them; a token request that waited for a withdrawal reads it and is refused. Token requests do
    not wait for each other (PostgreSQL; SQLite runs writers one at a time anyway)."""
    wanted = set(requested)
    row = run(session, _STANDING, {"account_id": account_id, "agency_id": agency_id}).first()
    consent = Consent(granted_scopes=row.granted_scopes, withdrawn_at=row.withdrawn_at, expired_at=row.expired_at,
                      expires_at=row.expires_at) if row is not None else None
    active = consent is not None and consent.is_active(utcnow())
    allowed = (wanted & consent.granted) if active and consent else set()
    if not active and wanted - SCOPES_WITHOUT_CONSENT:
        raise ConsentMissing("the citizen's consent for this agency has ended")
    return allowed | (wanted & SCOPES_WITHOUT_CONSENT)


# Built once: both run at every token issuance and refresh (the hot path).
_RECORD_USE = (update(Consent)
               .where(Consent.id.in_(
                   select(Consent.id)
                   .where(Consent.account_id == bindparam("account"), Consent.agency_id == bindparam("agency"),
                          or_(Consent.last_used_at.is_(None), Consent.last_used_at < bindparam("stale")))
                   .with_for_update(skip_locked=True)))
               .values(last_used_at=bindparam("now")))
_STANDING = (select(Consent.granted_scopes, Consent.withdrawn_at, Consent.expired_at, Consent.expires_at)
             .where(Consent.account_id == bindparam("account_id"), Consent.agency_id == bindparam("agency_id"))
             .with_for_update(read=True))


def _join(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))
