"""The delegation state machine (delegation.md "Lifecycle"): every transition from its allowed
prior states only, who and why recorded, a ledger entry each, and the invariants as constraints."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.acting import act_for, may_act_for
from consent.delegation_models import Delegation
from consent.delegations import TRANSITIONS, Terms
from consent.errors import (
    DelegationInvalid,
    DelegationStateError,
    InvitationForSomeoneElse,
    InvitationUnusable,
    NotAllowedToAct,
)
from consent.ledger import Ledger
from consent.models import LedgerEntry
from idp.accounts import create_account
from idp.models import Account
from keys.digests import secret_digest
from store.db import utcnow

CARER = Terms(type="carer", mode="act")


class Recorder:
    """DelegationEffects that remembers what it was asked to do."""

    def __init__(self) -> None:
        self.ended: list[str] = []
        self.told: list[tuple[str, str, bool]] = []

    def end_access(self, session: Session, delegation: Delegation) -> None:
        self.ended.append(delegation.id)

    def notify(self, session: Session, delegation: Delegation, what: str, *, tell_delegate: bool = True) -> None:
        self.told.append((delegation.id, what, tell_delegate))


def person(session: Session, name: str = "Pat") -> Account:
    return create_account(session, email=f"{name.lower()}-{secrets.token_hex(4)}@example.com", given_name=name,
                          family_name="Example", password=None)


@pytest.fixture
def principal(db_session: Session) -> Account:
    return person(db_session, "Mary")


@pytest.fixture
def carer(db_session: Session) -> Account:
    return person(db_session, "Carol")


def invited(session: Session, principal: Account, carer: Account, ledger: Ledger,
            terms: Terms = CARER) -> tuple[Delegation, str]:
    return lifecycle.invite_delegate(session, principal.id, carer.email, terms, ledger=ledger)


def active(session: Session, principal: Account, carer: Account, ledger: Ledger, terms: Terms = CARER,
           effects: Recorder | None = None) -> Delegation:
    delegation, token = invited(session, principal, carer, ledger, terms)
    return lifecycle.accept_invitation(session, token, carer.id, carer.email, ledger=ledger, effects=effects)


def ledger_types(session: Session) -> list[str]:
    return list(session.scalars(select(LedgerEntry.type).order_by(LedgerEntry.seq)))


def test_invitation_is_stored_hashed_and_defaults_to_twelve_months(db_session: Session, principal: Account,
                                                                   carer: Account, ledger: Ledger) -> None:
    delegation, token = invited(db_session, principal, carer, ledger)
    assert delegation.status == "invited" and delegation.token_hash == secret_digest(token)
    assert token not in (delegation.token_hash or "")
    assert delegation.ends_at is not None and 364 <= (delegation.ends_at - utcnow()).days <= 365
    assert ledger_types(db_session)[-1] == "delegation.invited"


def test_accepting_makes_it_active_and_records_who(db_session: Session, principal: Account, carer: Account,
                                                   ledger: Ledger) -> None:
    effects = Recorder()
    delegation = active(db_session, principal, carer, ledger, effects=effects)
    assert (delegation.status, delegation.delegate_id, delegation.status_reason) == ("active", carer.id, "accepted")
    assert delegation.status_changed_by == f"account:{carer.id}"
    history = lifecycle.changes(db_session, delegation.id)
    assert [(c.from_status, c.to_status) for c in history] == [(None, "invited"), ("invited", "active")]
    assert ledger_types(db_session)[-1] == "delegation.accepted"
    assert effects.told == [(delegation.id, "accept", True)]


def test_a_used_link_cannot_be_used_again(db_session: Session, principal: Account, carer: Account,
                                          ledger: Ledger) -> None:
    _delegation, token = invited(db_session, principal, carer, ledger)
    lifecycle.accept_invitation(db_session, token, carer.id, carer.email, ledger=ledger, effects=None)
    with pytest.raises(InvitationUnusable, match="already been used"):
        lifecycle.accept_invitation(db_session, token, carer.id, carer.email, ledger=ledger, effects=None)


def test_an_invitation_lapses_after_seven_days(db_session: Session, principal: Account, carer: Account,
                                               ledger: Ledger) -> None:
    _delegation, token = invited(db_session, principal, carer, ledger)
    later = utcnow() + dt.timedelta(days=7, seconds=1)
    with pytest.raises(InvitationUnusable, match="expired"):
        lifecycle.accept_invitation(db_session, token, carer.id, carer.email, ledger=ledger, effects=None, now=later)


def test_only_the_invited_address_can_accept(db_session: Session, principal: Account, carer: Account,
                                             ledger: Ledger) -> None:
    _delegation, token = invited(db_session, principal, carer, ledger)
    stranger = person(db_session, "Eve")
    with pytest.raises(InvitationForSomeoneElse, match="different email"):
        lifecycle.accept_invitation(db_session, token, stranger.id, stranger.email, ledger=ledger, effects=None)


def test_only_the_invited_address_can_decline(db_session: Session, principal: Account, carer: Account,
                                              ledger: Ledger) -> None:
    delegation, token = invited(db_session, principal, carer, ledger)
    stranger = person(db_session, "Eve")
    with pytest.raises(InvitationForSomeoneElse, match="different email"):
        lifecycle.decline_invitation(db_session, token, stranger.email, by=f"account:{stranger.id}", ledger=ledger,
                                     effects=None)
    assert delegation.status == "invited"


def test_declining_an_invitation(db_session: Session, principal: Account, carer: Account, ledger: Ledger) -> None:
    delegation, token = invited(db_session, principal, carer, ledger)
    lifecycle.decline_invitation(db_session, token, carer.email, by=f"account:{carer.id}", ledger=ledger,
                                 effects=None)
    assert delegation.status == "declined"
    assert ledger_types(db_session)[-1] == "delegation.declined"


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_every_transition_is_refused_from_a_status_it_does_not_start_from(
        db_session: Session, principal: Account, carer: Account, ledger: Ledger, name: str) -> None:
    delegation = active(db_session, principal, carer, ledger)
    lifecycle.transition(db_session, delegation, "revoke", by="system", reason="revoked_by_principal", ledger=ledger,
                         effects=None)
    assert "revoked" not in TRANSITIONS[name][0]
    with pytest.raises(DelegationStateError):
        lifecycle.transition(db_session, delegation, name, by="system", reason="renewed", ledger=ledger, effects=None)
    assert delegation.status == "revoked"


def test_suspend_and_resume(db_session: Session, principal: Account, carer: Account, ledger: Ledger) -> None:
    effects = Recorder()
    delegation = active(db_session, principal, carer, ledger)
    lifecycle.transition(db_session, delegation, "suspend", by="operator:sam", reason="suspended_by_operator",
                         note="safeguarding referral 123", ledger=ledger, effects=effects, tell_delegate=False)
    assert delegation.status == "suspended" and delegation.status_note == "safeguarding referral 123"
    assert effects.ended == [delegation.id] and effects.told[-1] == (delegation.id, "suspend", False)
    assert may_act_for(db_session, carer.id) == []
    lifecycle.transition(db_session, delegation, "resume", by="operator:sam", reason="resumed", ledger=ledger,
                         effects=effects)
    assert may_act_for(db_session, carer.id) == [delegation]
    assert ledger_types(db_session)[-2:] == ["delegation.suspended", "delegation.resumed"]


def test_revoking_ends_access_and_is_recorded(db_session: Session, principal: Account, carer: Account,
                                              ledger: Ledger) -> None:
    effects = Recorder()
    delegation = active(db_session, principal, carer, ledger)
    lifecycle.transition(db_session, delegation, "revoke", by=f"account:{principal.id}",
                         reason="revoked_by_principal", ledger=ledger, effects=effects)
    assert effects.ended == [delegation.id]
    assert ledger_types(db_session)[-1] == "delegation.revoked"


def test_request_then_approve_or_decline(db_session: Session, principal: Account, carer: Account,
                                         ledger: Ledger) -> None:
    asked = lifecycle.request_delegation(db_session, carer.id, principal.id, CARER, ledger=ledger)
    assert asked.status == "requested" and asked.pending_until is not None
    lifecycle.transition(db_session, asked, "approve", by=f"account:{principal.id}", reason="approved", ledger=ledger,
                         effects=None)
    assert asked.status == "active"
    other = lifecycle.request_delegation(db_session, person(db_session).id, principal.id, CARER, ledger=ledger)
    lifecycle.transition(db_session, other, "decline", by=f"account:{principal.id}", reason="request_declined",
                         ledger=ledger, effects=None)
    assert other.status == "declined"


def test_stop_everyone_ends_all_but_attorney(db_session: Session, principal: Account, carer: Account,
                                             ledger: Ledger) -> None:
    first = active(db_session, principal, carer, ledger)
    pending, _token = invited(db_session, principal, person(db_session), ledger)
    attorney = lifecycle.create_active(db_session, principal.id, person(db_session).id,
                                       Terms(type="attorney", mode="act"), ledger=ledger, by="operator:sam",
                                       reason="created_by_operator", basis="power_of_attorney",
                                       evidence=("LPA-7000-1234-5678", "sam"))
    effects = Recorder()
    assert lifecycle.stop_everyone(db_session, principal.id, ledger=ledger, effects=effects) == 2
    assert (first.status, pending.status, attorney.status) == ("revoked", "revoked", "active")
    assert first.status_reason == "stop_everyone" and effects.ended == [first.id]


def test_act_for_gives_only_what_delegation_consent_and_request_all_allow(
        db_session: Session, principal: Account, carer: Account, ledger: Ledger) -> None:
    terms = Terms(type="carer", mode="act", scopes=frozenset({"openid", "profile", "benefits:apply"}))
    delegation = active(db_session, principal, carer, ledger, terms)
    consented = {"profile", "email"}
    grant = act_for(db_session, delegation.id, carer.id, "agency-1", ["openid", "profile", "email", "benefits:apply"],
                    lambda _who, scopes: scopes & consented)
    assert grant.scopes == {"openid", "profile"}  # email: not delegated; benefits:apply: not consented
    assert grant.principal_id == principal.id and grant.actors == (carer.id,)


def test_a_view_delegate_gets_no_service_scopes(db_session: Session, principal: Account, carer: Account,
                                                ledger: Ledger) -> None:
    delegation = active(db_session, principal, carer, ledger, Terms(type="family", mode="view"))
    grant = act_for(db_session, delegation.id, carer.id, "a", ["openid", "profile", "benefits:apply",
                                                                "offline_access"], lambda _p, s: s)
    assert grant.scopes == {"openid", "profile"}


def test_nobody_else_can_act_under_a_delegation(db_session: Session, principal: Account, carer: Account,
                                                ledger: Ledger) -> None:
    delegation = active(db_session, principal, carer, ledger, Terms(type="carer", mode="act", agencies=("a",)))
    with pytest.raises(NotAllowedToAct):
        act_for(db_session, delegation.id, principal.id, "a", ["openid"], lambda _p, s: s)
    with pytest.raises(NotAllowedToAct):  # an agency the delegation does not cover
        act_for(db_session, delegation.id, carer.id, "b", ["openid"], lambda _p, s: s)
    with pytest.raises(NotAllowedToAct):  # a forged id
        act_for(db_session, "not-a-delegation", carer.id, "a", ["openid"], lambda _p, s: s)


def test_acting_after_the_end_date_is_refused(db_session: Session, principal: Account, carer: Account,
                                              ledger: Ledger) -> None:
    delegation = active(db_session, principal, carer, ledger)
    later = (delegation.ends_at or utcnow()) + dt.timedelta(seconds=1)
    with pytest.raises(NotAllowedToAct):
        act_for(db_session, delegation.id, carer.id, "a", ["openid"], lambda _p, s: s, now=later)


def test_onward_delegation_only_narrows_and_is_one_hop(db_session: Session, principal: Account, carer: Account,
                                                       ledger: Ledger) -> None:
    wide = Terms(type="carer", mode="act", scopes=frozenset({"openid", "profile"}), may_delegate_onward=True)
    parent = active(db_session, principal, carer, ledger, wide)
    helper = person(db_session, "Hal")
    for widened in (Terms(type="carer", mode="act", scopes=frozenset({"openid", "email"})),
                    Terms(type="carer", mode="act"),
                    Terms(type="carer", mode="act", scopes=frozenset({"openid"}), may_delegate_onward=True),
                    Terms(type="carer", mode="act", scopes=frozenset({"openid"}),
                          ends_at=(parent.ends_at or utcnow()) + dt.timedelta(days=1))):
        with pytest.raises(DelegationInvalid):
            lifecycle.invite_delegate(db_session, principal.id, helper.email, widened, ledger=ledger,
                                      by=f"account:{carer.id}", parent=parent)
    onward, token = lifecycle.invite_delegate(db_session, principal.id, helper.email,
                                              Terms(type="carer", mode="view", scopes=frozenset({"openid"})),
                                              ledger=ledger, by=f"account:{carer.id}", parent=parent)
    lifecycle.accept_invitation(db_session, token, helper.id, helper.email, ledger=ledger, effects=None)
    grant = act_for(db_session, onward.id, helper.id, "a", ["openid", "profile"], lambda _p, s: s)
    assert grant.actors == (helper.id, carer.id) and grant.scopes == {"openid"}
    lifecycle.transition(db_session, parent, "revoke", by="system", reason="revoked_by_principal", ledger=ledger,
                         effects=None)
    assert onward.status == "revoked" and onward.status_reason == "upstream_ended"


def test_nobody_can_delegate_to_themselves(db_session: Session, principal: Account, ledger: Ledger) -> None:
    _delegation, token = invited(db_session, principal, principal, ledger)
    with pytest.raises(DelegationInvalid):
        lifecycle.accept_invitation(db_session, token, principal.id, principal.email, ledger=ledger, effects=None)


@pytest.mark.parametrize(("column", "value", "constraint"), [
    ("delegate_id", "principal_id", "no_self_delegation"),
    ("ends_at", "starts_at", "start_before_end"),
    ("status", "'pending'", "status"),
    ("mode", "'edit'", "mode"),
    ("basis", "'power_of_attorney'", "basis_fits_type"),
    ("may_delegate_onward", "true", "one_hop_only"),
])
def test_the_database_refuses_what_the_rules_forbid(db_session: Session, principal: Account, carer: Account,
                                                    ledger: Ledger, column: str, value: str, constraint: str) -> None:
    parent = active(db_session, principal, carer, ledger, Terms(type="carer", mode="act", may_delegate_onward=True))
    delegation = active(db_session, principal, person(db_session), ledger)
    delegation.parent_id = parent.id
    db_session.flush()
    with pytest.raises(IntegrityError, match=constraint), db_session.begin_nested():
        db_session.execute(text(f"UPDATE delegations SET {column} = {value} WHERE id = :id"), {"id": delegation.id})
