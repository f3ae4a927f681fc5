"""Acting on behalf in OpenID Connect (delegation.md "Act", "What agencies receive").

Glue between ``consent.acting`` and the token machinery: which scopes the principal allows a
client, the ``act`` and ``delegation`` claims, and the grant a sign-in is acting under. The
authorize view puts that grant on ``g`` for ``save_authorization_code`` (Authlib passes no
more than the user to its hooks); the code and the token family then record it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import g
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.acting import VIEW_SCOPES, ActingGrant, act_for, actors_of, allowed_by
from consent.consents import SCOPES_WITHOUT_CONSENT
from consent.delegation_models import UPSTREAM, Delegation
from consent.events import EventType
from consent.ledger import Ledger
from consent.models import Consent
from consent.pseudonyms import delegation_reference, pseudonym_for
from idp.dependents import is_dependent
from idp.models import Account, Client, LoginSession, TokenFamily
from store.db import utcnow


def principal_allows(session: Session, client: Client) -> Any:
    """The scope filter for ``act_for``: the principal's standing consent. For a child profile that
    is the consent its parent gave on the consent page, for the child (``parent_decides``)."""

    def allows(principal_id: str, scopes: set[str]) -> set[str]:
        consent = session.scalar(select(Consent).where(Consent.account_id == principal_id,
                                                       Consent.agency_id == client.agency_id))
        if client.statutory_basis:
            return scopes & set(client.scope.split())
        granted = consent.granted if consent is not None and consent.is_active(utcnow()) else frozenset()
        return scopes & (set(granted) | SCOPES_WITHOUT_CONSENT)

    return allows


def parent_decides(session: Session, grant: ActingGrant) -> Account | None:
    """The child profile a parent is acting for, or None. A child profile cannot consent, so the
    parent (holding parental responsibility, delegation.md ``parent``) is asked on the consent page,
    in their own words about the child, and their answer is the child's consent. A young person with
    their own account decides for themselves, like any principal."""
    if grant.delegation.type != "parent":
        return None
    principal = session.get(Account, grant.principal_id)
    return principal if principal is not None and is_dependent(principal) else None


def scopes_to_ask_for(session: Session, grant: ActingGrant, requested: list[str]) -> list[str]:
    """What the parent is asked about: the request, within what the delegation covers."""
    limit = allowed_by(session, grant.delegation)
    wanted = [scope for scope in requested if limit is None or scope in limit]
    return [scope for scope in wanted if scope in VIEW_SCOPES] if grant.delegation.mode == "view" else wanted


def grant_for(session: Session, client: Client, delegation_id: str, actor_id: str, scopes: list[str]) -> ActingGrant:
    """NotAllowedToAct unless the actor may act under the delegation with this client now."""
    from consent.errors import NotAllowedToAct

    if not client.delegation_supported:
        raise NotAllowedToAct("This service cannot be used on someone else's behalf.")
    scopes = [scope for scope in client.get_allowed_scope(" ".join(scopes)).split()]
    return act_for(session, delegation_id, actor_id, client.agency_id, scopes, principal_allows(session, client))


def acting_claims(session: Session, client: Client, delegation_id: str | None) -> dict[str, Any]:
    """``act`` (RFC 8693 §4.1, nested for an onward delegation) and ``delegation``, or nothing."""
    if delegation_id is None:
        return {}
    delegation = session.get(Delegation, delegation_id)
    if delegation is None:
        return {}
    act: dict[str, Any] | None = None
    for actor_id in reversed(actors_of(session, delegation)):
        act = {"sub": client.subject_for(actor_id), **({"act": act} if act else {})}
    # The id is pairwise per agency, as in the ledger: one delegation id at two agencies would let
    # them join the citizen and the helper across their pairwise subjects.
    reference = delegation_reference(session, delegation.principal_id, delegation.id, client.agency_id)
    return {"act": act, "delegation": delegation.summary() | {"id": reference}}


def record_acting(session: Session, ledger: Ledger, client: Client, grant: ActingGrant) -> None:
    """delegation.md: every acting-for sign-in is a ledger event (``acted_on_behalf``)."""
    delegation, agency_id = grant.delegation, client.agency_id
    # Pairwise for the agency, the delegation too (docs/consent-ledger.md "Pseudonyms").
    ledger.append(session, EventType.ACTED_ON_BEHALF, {
        "principal": pseudonym_for(session, grant.principal_id, agency_id),
        "delegate": pseudonym_for(session, grant.actors[0], agency_id),
        "delegation": delegation_reference(session, grant.principal_id, delegation.id, agency_id),
        "agency": agency_id, "client": client.client_id,
    })
    delegation.last_used_at = utcnow()
    g.acting_grant = grant


def current_grant() -> ActingGrant | None:
    return g.get("acting_grant")  # type: ignore[no-any-return]


def families_under(session: Session, delegation_id: str) -> list[Any]:
    from idp.models import TokenFamily

    query = select(TokenFamily).where(TokenFamily.delegation_id == delegation_id, TokenFamily.revoked_at.is_(None))
    return list(session.scalars(query.order_by(TokenFamily.id)))  # the lock order (revoke_families_of)


@dataclasses.dataclass(frozen=True)
class ActingNow:
    principal: str  # their name
    relationship: str  # the delegation's type
    service: str  # the client's name


def acting_in_session(session: Session, login: LoginSession) -> list[ActingNow]:
    """delegation.md "Act": whom this browser session is acting for now, with which services: the
    token families issued in it under a delegation still in force (the banner on every page)."""
    now = utcnow()
    rows = session.execute(
        select(Account.given_name, Account.family_name, Delegation.type, Client.name)
        .select_from(TokenFamily)
        .join(Delegation, Delegation.id == TokenFamily.delegation_id)
        .join(Account, Account.id == TokenFamily.account_id)
        .join(Client, Client.client_id == TokenFamily.client_id)
        .outerjoin(UPSTREAM, UPSTREAM.id == Delegation.parent_id)
        .where(TokenFamily.session_id == login.id, TokenFamily.actor_account_id == login.account_id,
               TokenFamily.revoked_at.is_(None), TokenFamily.absolute_expires_at > now,
               Delegation.status == "active", Delegation.ends_at.is_(None) | (Delegation.ends_at > now),
               Delegation.parent_id.is_(None) | ((UPSTREAM.status == "active")
                                                 & (UPSTREAM.ends_at.is_(None) | (UPSTREAM.ends_at > now))))
        .distinct().order_by(Account.given_name, Client.name).limit(10))
    return [ActingNow(f"{given} {family}".strip(), kind, service) for given, family, kind, service in rows]
