"""Acting on behalf (delegation.md "Act"): whom a delegate may act for, and one checked grant.

These are the sign-in path's queries: both use ``ix_delegations_delegate_id_status_principal_id``
and touch only the delegate's own active delegations (and, for an onward one, its parent).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.delegation_models import UPSTREAM, Delegation
from consent.errors import NotAllowedToAct
from store.db import utcnow

# A ``view`` delegate may only receive claims (delegation.md): no service scopes, no refresh tokens.
VIEW_SCOPES = frozenset({"openid", "profile", "email", "phone", "address"})

ScopeFilter = Callable[[str, set[str]], set[str]]  # (principal_id, scopes) → what the principal allows


@dataclasses.dataclass(frozen=True)
class ActingGrant:
    delegation: Delegation
    principal_id: str
    actors: tuple[str, ...]  # account ids: the current actor first, then whoever delegated onward to them
    scopes: frozenset[str]


def may_act_for(session: Session, delegate_id: str, *, agency_id: str | None = None,
                now: dt.datetime | None = None) -> list[Delegation]:
    """The delegate's delegations in force now (for the agency, if given), oldest first."""
    now = now or utcnow()
    query = (select(Delegation)
             .where(Delegation.delegate_id == delegate_id, Delegation.status == "active")
             .order_by(Delegation.created_at))
    found = [d for d in session.scalars(query) if d.in_force(now) and (agency_id is None or d.covers_agency(agency_id))]
    return [d for d in found if _parent_holds(session, d, now, agency_id)]


def act_for(session: Session, delegation_id: str, delegate_id: str, agency_id: str, requested: Iterable[str],
            principal_allows: ScopeFilter, *, now: dt.datetime | None = None) -> ActingGrant:
    """Check one (delegate, principal, client, scopes) tuple: NotAllowedToAct unless the delegation
    is in force for this delegate and agency. The scopes are those the request, the delegation
    (and its parent) and the principal all allow."""
    now = now or utcnow()
    delegation = _load(session, delegation_id) if delegation_id else None
    if (delegation is None or delegation.delegate_id != delegate_id or not delegation.in_force(now)
            or not delegation.covers_agency(agency_id) or not _parent_holds(session, delegation, now, agency_id)):
        raise NotAllowedToAct("You cannot use this service for that person.")
    limit = allowed_by(session, delegation)
    scopes = set(requested) if limit is None else set(requested) & limit
    if delegation.mode == "view":
        scopes &= VIEW_SCOPES
    scopes = principal_allows(delegation.principal_id, scopes) | ({"openid"} & set(requested))
    return ActingGrant(delegation, delegation.principal_id, actors_of(session, delegation), frozenset(scopes))


def _load(session: Session, delegation_id: str) -> Delegation | None:
    """The delegation and the one it was passed on from, in one round trip (the sign-in path);
    later ``session.get`` of the parent is answered from the identity map."""
    row = session.execute(select(Delegation, UPSTREAM).outerjoin(UPSTREAM, UPSTREAM.id == Delegation.parent_id)
                          .where(Delegation.id == delegation_id[:36])).first()
    return None if row is None else row[0]


def still_in_force(session: Session, delegation_id: str, now: dt.datetime | None = None) -> bool:
    """For tokens already issued: the delegation (and its parent) still stand."""
    now = now or utcnow()
    delegation = _load(session, delegation_id)
    return delegation is not None and delegation.in_force(now) and _parent_holds(session, delegation, now, None)


def allowed_by(session: Session, delegation: Delegation) -> frozenset[str] | None:
    """The scopes a delegation (and the one it was passed on from) allows; None: every scope."""
    limit = delegation.scope_set
    if delegation.parent_id is not None:
        parent = session.get(Delegation, delegation.parent_id)
        upstream = parent.scope_set if parent is not None else frozenset()
        if upstream is not None:
            limit = upstream if limit is None else limit & upstream
    return limit


def actors_of(session: Session, delegation: Delegation) -> tuple[str, ...]:
    """RFC 8693 §4.1: the current actor first; for an onward delegation, the one who passed it on next."""
    actors: tuple[str, ...] = (delegation.delegate_id or "",)
    if delegation.parent_id is not None:
        parent = session.get(Delegation, delegation.parent_id)
        if parent is not None and parent.delegate_id:
            actors += (parent.delegate_id,)
    return actors


def _parent_holds(session: Session, delegation: Delegation, now: dt.datetime, agency_id: str | None) -> bool:
    if delegation.parent_id is None:
        return True
    parent = session.get(Delegation, delegation.parent_id)
    return (parent is not None and parent.in_force(now) and parent.principal_id == delegation.principal_id
            and (agency_id is None or parent.covers_agency(agency_id)))
