"""Email and password sign-in, choosing the account, and signing out of the identity service."""

from __future__ import annotations

import re

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from idp import interactions
from idp.attempts import reserve_sign_in, sign_in_succeeded
from idp.errors import PageError
from idp.forms import remember_outcome
from idp.login_sessions import current_session, end_current_session, start_session
from idp.mail import send_account_locked
from idp.models import Account
from idp.passkeys import has_passkeys
from idp.passwords import hash_password, needs_rehash, verify_password
from idp.services import db
from idp.throttle import LOCK_AT, MAX_WAIT, TooManyAttempts, wait_words
from store.db import utcnow

bp = Blueprint("signin", __name__)

MAX_EMAIL = 320
UNSENDABLE = re.compile(r"[\s\x00-\x1f\x7f]")  # whitespace or a control character
MAX_PASSWORD = 1024


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> ResponseReturnValue:
    interaction_id = request.values.get("interaction")
    interaction = interactions.load(interaction_id) if interaction_id else None
    if interaction_id and interaction is None:
        raise PageError("This sign-in has expired", "Go back to the service you were using and start again.")
    email = request.values.get("login_hint", "") if request.method == "GET" else request.form.get("email", "")
    if request.method == "GET":
        return render_template("signin/signin.html", email=email[:MAX_EMAIL], errors={}, interaction=interaction)
    password = request.form.get("password", "")
    errors = validate_form(email, password)
    if errors:
        return _signin_page(email, errors, interaction)
    try:
        attempts = reserve_sign_in(email)  # before the password is checked: no burst beats the budget
    except TooManyAttempts as refused:
        errors = {"email": f"Too many attempts to sign in. Wait {wait_words(refused.wait)} and try again"}
        return _signin_page(email, errors, interaction, status=429)
    account = authenticate(email, password)
    if account is None:
        tell_owner_if_locked(attempts, email)
        return _signin_page(email, {"email": "Enter a correct email address and password"}, interaction)
    sign_in_succeeded(email)
    start_session(account, acr="Cl", amr=["pwd"])
    db().commit()
    if interaction is not None:
        interaction.login_done = True
        interactions.save(interaction)
    if has_passkeys(db(), account.id):  # offer the passkey as a second factor (sign-in.md "Passkeys")
        return redirect(url_for("passkeys.confirm", interaction=interaction.id if interaction else None))
    if interaction is not None:
        return redirect(url_for("authorize.resume", interaction_id=interaction.id))
    return redirect(url_for("home.index"))


def _signin_page(email: str, errors: dict[str, str], interaction: object, status: int = 400) -> Response:
    html = render_template("signin/signin.html", email=email[:MAX_EMAIL], errors=errors, interaction=interaction)
    return Response(html, status=status)


def tell_owner_if_locked(attempts: int, email: str) -> None:
    """The failure that reached LOCK_AT tells a real owner, once."""
    if attempts == LOCK_AT:
        owner = db().scalar(select(Account).where(Account.email == email.strip().lower()))
        if owner is not None:
            minutes = int(MAX_WAIT.total_seconds() // 60)
            send_account_locked(db(), to=owner.email, minutes=minutes,
                                dedupe_key=f"locked:{owner.id}:{utcnow():%Y%m%d%H%M}")
    db().commit()


def validate_form(email: str, password: str) -> dict[str, str]:
    """Sign-in only looks the address up (it sends nothing to what was typed), so an account whose
    address predates the strict check (consent/contact_details.py) can still sign in; whitespace and
    control characters are refused all the same."""
    errors = {}
    if len(email) > MAX_EMAIL or "@" not in email or UNSENDABLE.search(email):
        errors["email"] = "Enter your email address, like name@example.com"
    if not password or len(password) > MAX_PASSWORD:
        errors["password"] = "Enter your password"
    return errors


def authenticate(email: str, password: str) -> Account | None:
    """The same work for unknown and known emails, so timing reveals nothing."""
    account = db().scalar(select(Account).where(Account.email == email.strip().lower()))
    valid = verify_password(account.password_hash if account else None, password)
    if account is None or not valid or account.status != "active":
        return None
    if needs_rehash(account.password_hash or ""):
        account.password_hash = hash_password(password)
    return account


@bp.route("/select-account/<interaction_id>", methods=["GET", "POST"])
def choose_account(interaction_id: str) -> ResponseReturnValue:
    interaction = interactions.load(interaction_id)
    login = current_session()
    if interaction is None or login is None:
        raise PageError("This sign-in has expired", "Go back to the service you were using and start again.")
    if request.method == "GET":
        return render_template("signin/choose_account.html", account=login.account, interaction=interaction)
    if request.form.get("choice") == "continue":
        interaction.account_chosen = True
        interactions.save(interaction)
        return redirect(url_for("authorize.resume", interaction_id=interaction.id))
    if request.form.get("choice") == "other":
        end_current_session()
        remember_outcome(url_for("signin.signin", interaction=interaction.id))
        db().commit()
        interaction.account_chosen = True
        interactions.save(interaction)
        return redirect(url_for("signin.signin", interaction=interaction.id))
    raise PageError("Choose an account", "Select which account to continue with.")


@bp.route("/signout", methods=["GET", "POST"])
def signout() -> Response | str:
    if request.method == "GET":
        return render_template("signin/signout.html", signed_in=current_session() is not None)
    end_current_session()
    remember_outcome(url_for("signin.signout"))
    db().commit()
    g.signed_out = True
    return render_template("signin/signed_out.html")
