"""The delegation lifecycle (delegation.md "Lifecycle") as an explicit state machine.

::

    (none) ─invite──────▶ invited ──accept───▶ active ◀──resume── suspended
    (none) ─request─────▶ requested ─approve─▶ active ──suspend─▶ suspended
    (none) ─create (attorney by an operator, parent for a dependent)─▶ active
    invited   ─decline─▶ declined        active ─renew─▶ active (a new end date)
    requested ─decline─▶ declined
    requested | invited | active | suspended ─revoke─▶ revoked
    requested | invited | active | suspended ─expire─▶ expired

Each transition names the statuses it may start from (``TRANSITIONS``) and is made with one
conditional UPDATE, so two concurrent requests can never both make it. Every transition
records who made it, when and why (``DelegationChange``), appends its ledger event in the
caller's transaction, and — when it ends access — has ``effects`` revoke the tokens issued
under the delegation (and under onward delegations from it) and tell the clients.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
from collections.abc import Iterable
from typing import Protocol, TypedDict

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from consent.contact_details import InvalidEmailAddress, email_address
from consent.delegation_models import MODES, UPSTREAM, Delegation, DelegationChange
from consent.errors import (
    DelegationInvalid,
    DelegationNotFound,
    DelegationStateError,
    InvitationForSomeoneElse,
    InvitationUnusable,
)
from consent.events import EventType, format_time
from consent.ledger import Ledger
from consent.pseudonyms import pseudonym_for
from keys.digests import secret_digest
from store.db import utcnow

INVITATION_DAYS = 7
REQUEST_DAYS = 14
DEFAULT_MONTHS = 12
MAX_END = dt.timedelta(days=5 * 366)
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,100}$")  # RFC 6749 §3.3
ENDING = frozenset({"revoked", "expired", "suspended"})

# transition → (the statuses it may start from, the status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "accept": (frozenset({"invited"}), "active"),
    "approve": (frozenset({"requested"}), "active"),
    "decline": (frozenset({"invited", "requested"}), "declined"),
    "revoke": (frozenset({"requested", "invited", "active", "suspended"}), "revoked"),
    "expire": (frozenset({"requested", "invited", "active", "suspended"}), "expired"),
    "suspend": (frozenset({"active"}), "suspended"),
    "resume": (frozenset({"suspended"}), "active"),
    "renew": (frozenset({"active"}), "active"),
    # A young person agrees that their parent keeps helping: before the age, or once it paused it.
    "continue": (frozenset({"active", "suspended"}), "active"),
}
EVENTS = {"accept": EventType.DELEGATION_ACCEPTED, "approve": EventType.DELEGATION_ACCEPTED,
          "decline": EventType.DELEGATION_DECLINED, "revoke": EventType.DELEGATION_REVOKED,
          "expire": EventType.DELEGATION_EXPIRED, "suspend": EventType.DELEGATION_SUSPENDED,
          "resume": EventType.DELEGATION_RESUMED, "renew": EventType.DELEGATION_RENEWED,
          "continue": EventType.DELEGATION_RENEWED}


class DelegationEffects(Protocol):
    """What ``idp`` does around a transition: this package holds no tokens and sends no email."""

    def end_access(self, session: Session, delegation: Delegation) -> None:
        """Revoke every token issued under the delegation; back-channel logout its acting sessions."""

    def notify(self, session: Session, delegation: Delegation, what: str, *, tell_delegate: bool = True) -> None:
        """Tell both people (through the outbox) what happened."""


@dataclasses.dataclass(frozen=True)
class Terms:
    """What a delegation allows (delegation.md "A delegation has")."""

    type: str
    mode: str = "act"
    agencies: tuple[str, ...] | None = None  # None: every agency
    scopes: frozenset[str] | None = None  # None: every scope the principal allows
    ends_at: dt.datetime | None = None
    may_delegate_onward: bool = False


def actor(account_id: str) -> str:
    return f"account:{account_id}"


def default_end(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(days=365 * DEFAULT_MONTHS // 12)


def check_terms(terms: Terms, now: dt.datetime) -> Terms:
    """Reject what delegation.md forbids; fill the default end date for carer and family."""
    if terms.mode not in MODES:
        raise DelegationInvalid("Choose whether they can only see details or also act for you.", "mode")
    if terms.scopes is not None and (not terms.scopes or not all(SCOPE_TOKEN.match(s) for s in terms.scopes)):
        raise DelegationInvalid("The scopes are not valid.", "scopes")
    if terms.agencies is not None and not terms.agencies:
        raise DelegationInvalid("Choose at least one service, or all services.", "agencies")
    ends_at = terms.ends_at
    if ends_at is None and terms.type in ("carer", "family"):
        ends_at = default_end(now)
    if ends_at is not None and not now < ends_at <= now + MAX_END:
        raise DelegationInvalid("The end date must be in the future and within 5 years.", "ends_at")
    return dataclasses.replace(terms, ends_at=ends_at)


# -- creating ------------------------------------------------------------------------------------

def invite_delegate(session: Session, principal_id: str, email: str, terms: Terms, *, ledger: Ledger,
                    by: str | None = None, parent: Delegation | None = None,
                    now: dt.datetime | None = None) -> tuple[Delegation, str]:
    """(none) → invited: returns the delegation and the single-use link token (stored hashed)."""
    now = now or utcnow()
    if parent is None and terms.type not in ("carer", "family"):
        raise DelegationInvalid("Invite a carer or a family member.")
    try:
        email = email_address(email)
    except InvalidEmailAddress as error:
        raise DelegationInvalid(str(error), "email") from None
    if parent is not None:
        _one_onward_only(session, parent)
    if parent is not None and terms.ends_at is None:
        terms = dataclasses.replace(terms, ends_at=parent.ends_at)  # by default, as long as the delegate's own
    terms = narrowed(parent, check_terms(terms, now), now) if parent else check_terms(terms, now)
    token = secrets.token_urlsafe(32)
    delegation = _new(session, principal_id, None, terms, status="invited", reason="invited",
                      by=by or actor(principal_id), now=now, invite_email=email, token_hash=secret_digest(token),
                      pending_until=now + dt.timedelta(days=INVITATION_DAYS), parent=parent)
    # The invitee is not known until they accept: the entry names them by a one-off pseudonym.
    _record(session, ledger, EventType.DELEGATION_INVITED, delegation, delegate=secrets.token_urlsafe(16))
    return delegation, token


def request_delegation(session: Session, delegate_id: str, principal_id: str, terms: Terms, *,
                       ledger: Ledger, now: dt.datetime | None = None) -> Delegation:
    """(none) → requested: a would-be carer asks; the principal has 14 days to decide."""
    now = now or utcnow()
    if terms.type not in ("carer", "family"):
        raise DelegationInvalid("Ask to become a carer or a family member.")
    _not_self(delegate_id, principal_id)
    delegation = _new(session, principal_id, delegate_id, check_terms(terms, now), status="requested",
                      reason="requested", by=actor(delegate_id), now=now,
                      pending_until=now + dt.timedelta(days=REQUEST_DAYS))
    _record(session, ledger, EventType.DELEGATION_REQUESTED, delegation)
    return delegation


def create_active(session: Session, principal_id: str, delegate_id: str, terms: Terms, *, ledger: Ledger,
                  by: str, reason: str, basis: str, evidence: tuple[str, str] | None = None,
                  now: dt.datetime | None = None) -> Delegation:
    """(none) → active: an attorney delegation (operator, after checking ``evidence``: reference and
    checker) or a parent's delegation for a dependent."""
    now = now or utcnow()
    _not_self(delegate_id, principal_id)
    proof: _Evidence = {} if evidence is None else {"evidence_reference": evidence[0],
                                                    "evidence_checked_by": evidence[1], "evidence_checked_at": now}
    delegation = _new(session, principal_id, delegate_id, check_terms(terms, now), status="active", reason=reason,
                      by=by, now=now, basis=basis, **proof)
    _record(session, ledger, EventType.DELEGATION_CREATED, delegation)
    return delegation


def narrowed(parent: Delegation, terms: Terms, now: dt.datetime) -> Terms:
    """delegation.md: an onward delegation only narrows, is at most one hop, and needs permission."""
    if not parent.may_delegate_onward or parent.parent_id is not None or not parent.in_force(now):
        raise DelegationInvalid("You are not allowed to pass this on to someone else.")
    if terms.may_delegate_onward or (parent.mode == "view" and terms.mode == "act"):
        raise DelegationInvalid("An onward delegation cannot allow more than yours does.", "mode")
    if parent.scopes is not None and (terms.scopes is None or not terms.scopes <= parent.scope_set):  # type: ignore[operator]
        raise DelegationInvalid("An onward delegation cannot cover more than yours does.", "scopes")
    if parent.agencies is not None and (terms.agencies is None or not set(terms.agencies) <= set(parent.agencies)):
        raise DelegationInvalid("An onward delegation cannot cover more services than yours does.", "agencies")
    if parent.ends_at is not None and (terms.ends_at is None or terms.ends_at > parent.ends_at):
        raise DelegationInvalid("An onward delegation cannot last longer than yours does.", "ends_at")
    return dataclasses.replace(terms, type=parent.type)


def _one_onward_only(session: Session, parent: Delegation) -> None:
    """delegation.md: passing on is to one other person. The parent row is locked first, so two
    invitations sent at once cannot both see none open."""
    session.execute(select(Delegation.id).where(Delegation.id == parent.id).with_for_update())
    open_onward = select(func.count()).select_from(Delegation).where(
        Delegation.parent_id == parent.id, Delegation.status.in_(("invited", "active", "suspended")))
    if session.scalar(open_onward):
        raise DelegationInvalid("You have already asked someone else to help. Stop them helping first, "
                                "then you can ask another person.", "email")


class _Evidence(TypedDict, total=False):
    """An attorney delegation's record of the checked power of attorney (``create_active``)."""
    evidence_reference: str
    evidence_checked_by: str
    evidence_checked_at: dt.datetime


def _new(session: Session, principal_id: str, delegate_id: str | None, terms: Terms, *, status: str, reason: str,
         by: str, now: dt.datetime, parent: Delegation | None = None, basis: str = "consent",
         **extra: object) -> Delegation:
    if parent is not None:
        basis = parent.basis
        extra |= {"evidence_reference": parent.evidence_reference, "evidence_checked_by": parent.evidence_checked_by,
                  "evidence_checked_at": parent.evidence_checked_at}
    delegation = Delegation(
        principal_id=principal_id, delegate_id=delegate_id, type=terms.type, basis=basis, mode=terms.mode,
        agencies=sorted(terms.agencies) if terms.agencies is not None else None,
        scopes=" ".join(sorted(terms.scopes)) if terms.scopes is not None else None,
        may_delegate_onward=terms.may_delegate_onward, parent_id=parent.id if parent else None, starts_at=now,
        ends_at=terms.ends_at, status=status, status_reason=reason, status_changed_at=now, status_changed_by=by,
        created_at=now, created_by=by, **extra,
    )
    session.add(delegation)
    session.flush()
    session.add(DelegationChange(delegation_id=delegation.id, at=now, from_status=None, to_status=status,
                                 reason=reason, actor=by))
    return delegation


def _not_self(delegate_id: str, principal_id: str) -> None:
    if delegate_id == principal_id:
        raise DelegationInvalid("You cannot act for yourself.")


# -- transitions -------------------------------------------------------------------------------

def transition(session: Session, delegation: Delegation, name: str, *, by: str, reason: str, ledger: Ledger,
               effects: DelegationEffects | None, note: str | None = None, now: dt.datetime | None = None,
               tell_delegate: bool = True, when: ColumnElement[bool] | None = None, **values: object) -> Delegation:
    """Make one transition of the diagram, or raise DelegationStateError if its prior status is wrong
    (or ``when``, a further condition on the row, does not hold)."""
    allowed, target = TRANSITIONS[name]
    now = now or utcnow()
    before = delegation.status
    condition = Delegation.status.in_(allowed) if when is None else Delegation.status.in_(allowed) & when
    changed = session.execute(
        update(Delegation).where(Delegation.id == delegation.id, condition)
        .values(status=target, status_reason=reason, status_changed_at=now, status_changed_by=by,
                status_note=note, **values)
    ).rowcount  # type: ignore[attr-defined]
    if changed != 1:
        session.refresh(delegation)
        raise DelegationStateError(f"This cannot be done while the delegation is {delegation.status}.")
    session.refresh(delegation)
    session.add(DelegationChange(delegation_id=delegation.id, at=now, from_status=before, to_status=target,
                                 reason=reason, actor=by, note=note))
    if target in ENDING and before in ("active", "suspended") and effects is not None:
        effects.end_access(session, delegation)
        if target == "suspended":  # an onward delegation stands on this one: its access pauses too
            for onward in session.scalars(select(Delegation).where(Delegation.parent_id == delegation.id,
                                                                   Delegation.status == "active")):
                effects.end_access(session, onward)
    _record(session, ledger, EVENTS[name], delegation)
    if effects is not None:
        effects.notify(session, delegation, name, tell_delegate=tell_delegate)
    if target in ("revoked", "expired"):
        _end_onward(session, delegation, ledger=ledger, effects=effects, now=now)
    return delegation


def continue_for_young_person(session: Session, delegation: Delegation, principal_id: str, *, ledger: Ledger,
                              effects: DelegationEffects | None, comes_of_age: dt.datetime | None = None,
                              note: str | None = None, assurance: str | None = None,
                              now: dt.datetime | None = None) -> Delegation:
    """delegation.md "Review / expire": a ``parent`` delegation goes on past the configured age only
    if the young person, signed in to their own account, agrees. It then needs renewing like a
    family member's, 12 months after the age is reached (or after today, if later), so agreeing
    early never shortens it; one paused by our staff stays paused. ``assurance``: how the agreement
    was given (``AGREEMENT_ASSURANCES``), decided by the caller, which knows the sign-in."""
    now = now or utcnow()
    if delegation.type != "parent" or delegation.principal_id != principal_id:
        raise DelegationInvalid("Only the young person can agree that their parent keeps helping them.")
    if delegation.status == "suspended" and delegation.status_reason != "dependent_came_of_age":
        raise DelegationStateError("This has been paused by our staff. Contact us to talk about it.")
    paused_for_age = (Delegation.status == "active") | (Delegation.status_reason == "dependent_came_of_age")
    ends_at = default_end(max(now, comes_of_age or now))
    return transition(session, delegation, "continue", by=actor(principal_id), reason="young_person_consented",
                      ledger=ledger, effects=effects, now=now, when=paused_for_age, note=note, continued_at=now,
                      continued_assurance=assurance, ends_at=ends_at, reminded_at=None)


def _end_onward(session: Session, delegation: Delegation, *, ledger: Ledger, effects: DelegationEffects | None,
                now: dt.datetime) -> None:
    """An onward delegation cannot outlive the one it came from."""
    query = select(Delegation).where(Delegation.parent_id == delegation.id,
                                     Delegation.status.in_(TRANSITIONS["revoke"][0]))
    for onward in session.scalars(query).all():
        transition(session, onward, "revoke", by="system", reason="upstream_ended", ledger=ledger, effects=effects,
                   now=now)


def accept_invitation(session: Session, token: str, delegate_id: str, delegate_email: str, *, ledger: Ledger,
                      effects: DelegationEffects | None, now: dt.datetime | None = None) -> Delegation:
    """invited → active, by the person the link was emailed to, within 7 days, once."""
    delegation = invitation_for(session, token, delegate_email, now)
    _not_self(delegate_id, delegation.principal_id)
    if delegation.parent_id is not None:
        parent = session.get(Delegation, delegation.parent_id)
        if parent is None or not parent.in_force(now or utcnow()) or parent.delegate_id == delegate_id:
            raise InvitationUnusable("This invitation can no longer be accepted.")
    return transition(session, delegation, "accept", by=actor(delegate_id), reason="accepted", ledger=ledger,
                      effects=effects, now=now, delegate_id=delegate_id)


def decline_invitation(session: Session, token: str, delegate_email: str, *, by: str, ledger: Ledger,
                       effects: DelegationEffects | None, now: dt.datetime | None = None) -> Delegation:
    """invited → declined, by the person the link was emailed to (as accepting is)."""
    delegation = invitation_for(session, token, delegate_email, now)
    return transition(session, delegation, "decline", by=by, reason="declined", ledger=ledger, effects=effects,
                      now=now)


def invitation_for(session: Session, token: str, email: str, now: dt.datetime | None = None) -> Delegation:
    """The invitation a link is for, if ``email`` (the signed-in person's) is the address it was sent
    to: the one check behind the invitation page, Accept and Decline. Anyone else holding the link
    gets InvitationForSomeoneElse, which names neither the principal nor the terms."""
    delegation = invitation(session, token, now)
    if delegation.invite_email != email.strip().lower():
        raise InvitationForSomeoneElse(
            "This invitation was sent to a different email address from the one you are signed in with. "
            "Sign out, then open the link again and sign in (or create an account) with the email address "
            "the invitation was sent to. If you were not expecting an invitation, you can ignore it.")
    return delegation


def invitation(session: Session, token: str, now: dt.datetime | None = None) -> Delegation:
    """The invitation a link is for: InvitationUnusable if unknown, used, or older than 7 days."""
    if not token or len(token) > 100:
        raise InvitationUnusable("This link is not valid.")
    delegation = session.scalar(select(Delegation).where(Delegation.token_hash == secret_digest(token)))
    if delegation is None:
        raise InvitationUnusable("This link is not valid.")
    if delegation.status != "invited":
        raise InvitationUnusable("This link has already been used.")
    if delegation.pending_until is None or delegation.pending_until <= (now or utcnow()):
        raise InvitationUnusable("This invitation has expired. Ask for a new one.")
    return delegation


def stop_everyone(session: Session, principal_id: str, *, ledger: Ledger, effects: DelegationEffects,
                  now: dt.datetime | None = None) -> int:
    """delegation.md "Stop everyone": end every delegation of the principal in one step.

    ``attorney`` delegations are ended only by an operator (delegation.md "Rules")."""
    query = select(Delegation).where(Delegation.principal_id == principal_id, Delegation.type != "attorney",
                                     Delegation.status.in_(TRANSITIONS["revoke"][0])).order_by(Delegation.created_at)
    count = 0
    for delegation in session.scalars(query).all():
        session.refresh(delegation)
        if delegation.status in TRANSITIONS["revoke"][0]:
            transition(session, delegation, "revoke", by=actor(principal_id), reason="stop_everyone", ledger=ledger,
                       effects=effects, now=now)
            count += 1
    return count


# -- reading -----------------------------------------------------------------------------------

def of_principal(session: Session, principal_id: str) -> list[Delegation]:
    query = select(Delegation).where(Delegation.principal_id == principal_id).order_by(Delegation.created_at.desc())
    return list(session.scalars(query))


def of_delegate(session: Session, delegate_id: str, statuses: Iterable[str] | None = None) -> list[Delegation]:
    query = select(Delegation).where(Delegation.delegate_id == delegate_id)
    if statuses is not None:
        query = query.where(Delegation.status.in_(list(statuses)))
    return list(session.scalars(query.order_by(Delegation.created_at.desc())))


def passed_on_by(session: Session, delegate_id: str) -> list[Delegation]:
    """The onward delegations this delegate made from their own (delegation.md: one hop)."""
    query = (select(Delegation).join(UPSTREAM, UPSTREAM.id == Delegation.parent_id)
             .where(UPSTREAM.delegate_id == delegate_id).order_by(Delegation.created_at.desc()))
    return list(session.scalars(query))


def owned(session: Session, delegation_id: str, *, principal_id: str | None = None,
          delegate_id: str | None = None) -> Delegation:
    """The delegation if the person is its principal (or delegate); forged ids are NotFound."""
    delegation = session.get(Delegation, delegation_id[:36]) if delegation_id else None
    mine = delegation is not None and (
        (principal_id is not None and delegation.principal_id == principal_id)
        or (delegate_id is not None and delegation.delegate_id == delegate_id))
    if not mine:
        raise DelegationNotFound("There is no such delegation.")
    assert delegation is not None
    return delegation


def changes(session: Session, delegation_id: str) -> list[DelegationChange]:
    query = select(DelegationChange).where(DelegationChange.delegation_id == delegation_id)
    return list(session.scalars(query.order_by(DelegationChange.id)))


def _record(session: Session, ledger: Ledger, event: EventType, delegation: Delegation,
            delegate: str | None = None) -> None:
    # docs/consent-ledger.md "Pseudonyms": a delegation concerns no one agency (it may cover several),
    # so both people are named in the service's own context (agency None).
    fields: dict[str, object] = {
        "principal": pseudonym_for(session, delegation.principal_id, None),
        # An invitee who has not accepted is not known: a one-off pseudonym names them.
        "delegate": delegate or (pseudonym_for(session, delegation.delegate_id, None) if delegation.delegate_id
                                 else secrets.token_urlsafe(16)),
        "delegation": delegation.id,
    }
    if event in (EventType.DELEGATION_INVITED, EventType.DELEGATION_REQUESTED, EventType.DELEGATION_CREATED):
        if delegation.scopes is not None:
            fields["scopes"] = sorted(delegation.scope_set or ())
    if event in (EventType.DELEGATION_INVITED, EventType.DELEGATION_REQUESTED, EventType.DELEGATION_CREATED,
                 EventType.DELEGATION_RENEWED) and delegation.ends_at is not None:
        fields["expires"] = format_time(delegation.ends_at)
    ledger.append(session, event, fields)
