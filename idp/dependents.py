"""Dependents (delegation.md "Relationships": ``parent``): a child profile with no credentials of
its own, made by a parent who then acts for it. The profile is an account that cannot sign in (no
password, no passkey, an address that receives nothing); the parent's assertion of parental
responsibility is recorded as the delegation's creator and time, for an operator to verify.

When the child is old enough, the parent gives the profile to them as their own account (the same
account, so agencies keep knowing them by the same subject): a single-use link to the young
person's email lets them set a password. From then on they decide what is shared, and whether the
parent keeps helping past the configured age (``consent.delegations.continue_for_young_person``).

Without identity proofing we cannot know that the address was the young person's and not one the
parent controls, so the agreement is made as hard as it can be for a parent to give in the young
person's name (docs/delegation.md "A young person's agreement"): the address cannot be the parent's
own (nor a +tag of it, RFC 5233) or one they already gave another child's profile to; both are told
at the handover; the agreement needs a sign-in of its own at least ``COOLING_OFF`` after the
handover (never the session the link started); and how it was given is recorded
(``agreement_assurance``), for operators and, in the ``delegation`` claim, for agencies.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.contact_details import InvalidEmailAddress, email_address, name_problem
from consent.delegation_models import Delegation
from consent.delegations import Terms
from consent.errors import DelegationInvalid
from consent.ledger import Ledger
from idp.models import Account, EmailChallenge, LoginSession
from idp.outbox import undeliverable
from keys.digests import secret_digest
from store.db import utcnow

DEPENDENT_DOMAIN = "dependent.invalid"  # RFC 2606: never delivers, so never a way in
# UK GDPR Art. 8 and the Data Protection Act 2018 s.9: from 13 a child can consent to online services.
OWN_ACCOUNT_AGE = 13
HANDOVER_DAYS = 7
COOLING_OFF = dt.timedelta(days=7)
PASSKEY_METHODS = frozenset({"hwk", "swk"})  # RFC 8176 §2, as idp.assurance.passkey_amr names them


class AgreementNotYet(DelegationInvalid):
    """A young person's agreement asked for too early, or from a session that does not show it is them."""

    status = 403


class HandoverUnusable(DelegationInvalid):
    """A handover link that is unknown, used, replaced by a newer one, or past its 7 days."""

    status = 410


def is_dependent(account: Account) -> bool:
    return is_dependent_address(account.email)


def is_dependent_address(email: str) -> bool:
    return email.endswith("@" + DEPENDENT_DOMAIN)


def create_dependent(session: Session, parent: Account, *, given_name: str, family_name: str, birthdate: dt.date,
                     parent_age: int, ledger: Ledger, today: dt.date | None = None) -> Delegation:
    today = today or dt.date.today()
    if not given_name.strip() or not family_name.strip():
        raise DelegationInvalid("Enter the child's first and last name.")
    if problem := name_problem(given_name) or name_problem(family_name):
        raise DelegationInvalid(problem)
    if not (_years_before(today, parent_age) < birthdate <= today):
        raise DelegationInvalid(f"A child profile is for a child under {parent_age}.")
    child = Account(email=f"{uuid.uuid4()}@{DEPENDENT_DOMAIN}", email_verified=False, given_name=given_name.strip(),
                    family_name=family_name.strip(), birthdate=birthdate, password_hash=None)
    session.add(child)
    session.flush()
    return lifecycle.create_active(session, child.id, parent.id, Terms(type="parent", mode="act"), ledger=ledger,
                                   by=lifecycle.actor(parent.id), reason="created_for_dependent",
                                   basis="parental_responsibility")


def offer_own_account(session: Session, delegation: Delegation, parent: Account, email: str, *,
                      today: dt.date | None = None) -> tuple[Account, str | None]:
    """The parent gives their child's profile to the child: returns the child and the link token for
    ``email`` (the young person's own address), or None when that address cannot take the profile
    (it has an account already): the parent is not told which, so the form reveals no accounts.
    Any earlier link for the child stops working."""
    if problem := own_account_problem(session, delegation, parent, today):
        raise DelegationInvalid(problem)
    child = session.get(Account, delegation.principal_id)
    assert child is not None
    try:
        email = email_address(email)
    except InvalidEmailAddress as error:
        raise DelegationInvalid(str(error)) from None
    if undeliverable(email):
        raise DelegationInvalid(str(InvalidEmailAddress()))
    if parents_address(session, parent, child.id, email):
        raise DelegationInvalid(f"Enter {child.given_name}'s own email address. It cannot be one of yours, "
                                "or one you gave another child's account to.")
    _withdraw_offers(session, child.id)
    if session.scalar(select(Account.id).where(Account.email == email)) is not None:
        return child, None
    token = secrets.token_urlsafe(32)
    offer = EmailChallenge(purpose="handover", email=email, account_id=child.id, code_hash="",
                           expires_at=utcnow() + dt.timedelta(days=HANDOVER_DAYS))
    session.add(offer)
    session.flush()
    offer.code_hash = _link_hash(offer.id, token)
    return child, f"{offer.id}.{token}"


def parents_address(session: Session, parent: Account, child_id: str, email: str) -> bool:
    """The parent's own address (also with a +tag, RFC 5233 §1), or one they offered another child's profile to."""
    if _without_tag(email) == _without_tag(parent.email):
        return True
    children = select(Delegation.principal_id).where(Delegation.delegate_id == parent.id, Delegation.type == "parent")
    offered = select(EmailChallenge.id).where(EmailChallenge.purpose == "handover", EmailChallenge.email == email,
                                              EmailChallenge.account_id.in_(children),
                                              EmailChallenge.account_id != child_id)
    return session.scalar(offered.limit(1)) is not None


def _without_tag(email: str) -> str:
    local, _, domain = email.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def agreement_assurance(session: Session, account: Account, login: LoginSession,
                        now: dt.datetime | None = None) -> str:
    """How a young person's agreement that their parent keeps helping is given now, or AgreementNotYet:
    only from an account handed over at least ``COOLING_OFF`` ago, in a sign-in made after that
    (so never the session the handover link started, nor one from before)."""
    now = now or utcnow()
    offer = handed_over_at(session, account.id)
    if offer is None or offer.verified_at is None:
        raise AgreementNotYet("Only a young person who has taken over their own account can agree to this.")
    opens = agreement_opens(offer)
    if now < opens:
        raise AgreementNotYet(f"You can agree from {opens:%-d %B %Y}, {COOLING_OFF.days} days after you took "
                              "over your account. Until then your parent can still help you.")
    if login.account_id != account.id or login.auth_time < opens:
        raise AgreementNotYet("To agree, sign out, then sign in again yourself with your own password or passkey.")
    return "handover_passkey" if PASSKEY_METHODS & set(login.amr or ()) else "handover_password"


def agreement_opens(offer: EmailChallenge) -> dt.datetime:
    assert offer.verified_at is not None
    return offer.verified_at + COOLING_OFF


def own_account_problem(session: Session, delegation: Delegation, parent: Account,
                        today: dt.date | None = None) -> str | None:
    """Why this parent cannot give this profile to the child now, or None."""
    child = session.get(Account, delegation.principal_id)
    if child is None or not is_dependent(child) or delegation.delegate_id != parent.id or not _standing(delegation):
        return "Only a parent can give a child profile its own account."
    if child.birthdate is None or child.birthdate > _years_before(today or dt.date.today(), OWN_ACCOUNT_AGE):
        return f"A child can have their own account from the age of {OWN_ACCOUNT_AGE}."
    return None


def _standing(delegation: Delegation) -> bool:
    """A parent's delegation that lets them hand the profile over: in force, or paused only because
    the child reached the age (else the profile would be stranded) — never one paused or ended by
    our staff or anyone else."""
    return delegation.type == "parent" and (delegation.in_force(utcnow()) or (
        delegation.status == "suspended" and delegation.status_reason == "dependent_came_of_age"))


def offer_address(session: Session, link: str) -> str | None:
    """The address a handover link's offer was sent to, before its secret is checked (so that
    guesses at it count against that address), or None if the link names no offer."""
    offer_id, _, _token = link[:200].partition(".")
    offer = session.get(EmailChallenge, offer_id[:36]) if offer_id else None
    return offer.email if offer is not None and offer.purpose == "handover" else None


def handover(session: Session, link: str) -> tuple[EmailChallenge, Account]:
    """The open offer a link is for, and the child profile: HandoverUnusable otherwise. Checked again
    when the link is used: a parent whose delegation has since been suspended or ended by anyone
    cannot use a link sent before."""
    offer_id, _, token = link[:200].partition(".")
    offer = session.get(EmailChallenge, offer_id[:36]) if offer_id and token else None
    child = session.get(Account, offer.account_id) if offer is not None and offer.account_id else None
    if (offer is None or child is None or offer.purpose != "handover" or offer.consumed_at is not None
            or offer.expires_at <= utcnow() or not is_dependent(child)
            or not hmac.compare_digest(offer.code_hash, _link_hash(offer.id, token))
            or not any(_standing(d) for d in session.scalars(select(Delegation).where(
                Delegation.principal_id == child.id, Delegation.type == "parent")))):
        raise HandoverUnusable("This link is not valid. It may have been used already, or be more than "
                               f"{HANDOVER_DAYS} days old. Ask your parent to send a new one.")
    return offer, child


def handed_over_at(session: Session, account_id: str) -> EmailChallenge | None:
    """The used handover link that made this account its owner's own (evidence for operators)."""
    return session.scalars(select(EmailChallenge).where(
        EmailChallenge.account_id == account_id, EmailChallenge.purpose == "handover",
        EmailChallenge.verified_at.is_not(None)).order_by(EmailChallenge.verified_at.desc())).first()


def take_own_account(session: Session, offer: EmailChallenge, child: Account, password_hash: str) -> Account:
    """The young person sets their password: the profile becomes their account, its address verified
    by the link. One conditional UPDATE, so a link used twice at once works once."""
    taken = session.execute(update(EmailChallenge).where(EmailChallenge.id == offer.id,
                                                         EmailChallenge.consumed_at.is_(None))
                            .values(consumed_at=utcnow(), verified_at=utcnow())).rowcount  # type: ignore[attr-defined]
    if taken != 1 or session.scalar(select(Account.id).where(Account.email == offer.email)) is not None:
        raise HandoverUnusable("This link has already been used, or the address now has another account.")
    child.email, child.email_verified, child.password_hash = offer.email, True, password_hash
    return child


def _withdraw_offers(session: Session, child_id: str) -> None:
    session.execute(update(EmailChallenge).where(EmailChallenge.account_id == child_id,
                                                 EmailChallenge.purpose == "handover",
                                                 EmailChallenge.consumed_at.is_(None)).values(consumed_at=utcnow()))


def _link_hash(offer_id: str, token: str) -> str:
    return secret_digest(f"{offer_id}:{token}")


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)
