"""Children growing up (delegation.md "Relationships" ``parent``, "Review / expire"): a parent gives
a child profile to the young person as their own account, through a single-use emailed link; the
young person, signed in as themselves, can then agree that the parent keeps helping after the
configured age (the button is on their "People who can act for you" page)."""

from __future__ import annotations

from flask import Blueprint, Response, g, render_template, request, url_for
from flask.typing import ResponseReturnValue

from consent import delegations as lifecycle
from consent.errors import DelegationInvalid
from idp.attempts import guess_succeeded, reserve_email, reserve_guess
from idp.blueprints.account import signed_in
from idp.dependents import (
    COOLING_OFF,
    handover,
    offer_address,
    offer_own_account,
    own_account_problem,
    take_own_account,
)
from idp.errors import PageError
from idp.forms import completed
from idp.login_sessions import current_session, start_session
from idp.mail import SERVICE
from idp.models import Account
from idp.outbox import queue_email
from idp.password_policy import password_problem
from idp.passwords import hash_password
from idp.services import db, services

bp = Blueprint("young_people", __name__)


@bp.route("/account/acting-for/<delegation_id>/own-account", methods=["GET", "POST"])
@signed_in
def offer(delegation_id: str) -> ResponseReturnValue:
    """The parent's page: the young person's own email address gets a link to take the profile over."""
    delegation = lifecycle.owned(db(), delegation_id, delegate_id=g.account.id)
    if problem := own_account_problem(db(), delegation, g.account):
        raise PageError("You cannot do this", problem, 403)
    child = db().get(Account, delegation.principal_id)
    email = request.form.get("email", "")[:320]
    if request.method == "GET":
        return render_template("delegation/own_account_offer.html", child=child, email="", errors={})
    reserve_email(email.strip().lower())
    try:
        child, link = offer_own_account(db(), delegation, g.account, email)
    except DelegationInvalid as error:
        db().rollback()
        html = render_template("delegation/own_account_offer.html", child=child, email=email,
                               errors={"email": str(error)})
        return Response(html, status=400)
    to = email.strip().lower()
    if link is None:  # the address has an account: tell it, not the parent (no enumeration)
        queue_email(db(), to=to, subject=f"{SERVICE}: a child's account was offered to this address", body=(
            f"Someone tried to give a child's {SERVICE} account to this email address, but it already has an "
            "account, so nothing has changed. A young person taking over their own account needs an address "
            "with no account yet.\n\nIf you were not expecting this, you can ignore this email.\n"))
    else:
        address = services().settings.endpoint(url_for("young_people.take", link=link))
        queue_email(db(), to=to, subject=f"Your own {SERVICE} account", body=(
            f"{g.account.name} has set up a {SERVICE} account for you, {child.given_name}.\n\n"
            f"To start using it, open this link within 7 days and choose a password (the link works once):\n"
            f"{address}\n\nIf you were not expecting this, you can ignore this email.\n"))
    return completed(url_for("delegation.acting_for", done="own_account_offered"))


@bp.route("/own-account/<secret:link>", methods=["GET", "POST"])
def take(link: str) -> ResponseReturnValue:
    """The young person's page: choose a password; the profile becomes their account."""
    reserve_guess(offer_address(db(), link))
    offered, child = handover(db(), link)
    guess_succeeded()
    if current_session() is not None:
        raise PageError("Sign out first", f"This link is for {child.given_name} to set up their own account. "
                        "Sign out, then open the link again.", 403)
    if request.method == "GET":
        return render_template("delegation/own_account.html", child=child, email=offered.email, errors={})
    password = request.form.get("password", "")
    if problem := password_problem(password, email=offered.email):
        html = render_template("delegation/own_account.html", child=child, email=offered.email,
                               errors={"password": problem})
        return Response(html, status=400)
    parents = [db().get(Account, d.delegate_id) for d in lifecycle.of_principal(db(), child.id)
               if d.type == "parent" and d.delegate_id]
    take_own_account(db(), offered, child, hash_password(password))
    queue_email(db(), to=offered.email, subject=f"{SERVICE}: you have your own account", body=(
        f"{child.given_name}, you now have your own {SERVICE} account, which your parent set up for you. You "
        "decide what is shared with services. Your parent can still help you until you are "
        f"{services().settings.delegation_parent_age}; only you can agree that they keep helping after that, "
        f"by signing in yourself at least {COOLING_OFF.days} days from now.\n\n"
        "If you did not set up this account, contact us.\n"))
    for parent in parents:
        if parent is not None:
            queue_email(db(), to=parent.email, subject=f"{SERVICE}: {child.given_name} has their own account",
                        body=f"{child.name} has set up their own account. They now decide what is shared "
                             "and who can help them; you can still help them while they allow it.\n")
    start_session(child, acr="Cl", amr=["pwd"])
    return completed(url_for("delegation.delegates", done="own_account"))
