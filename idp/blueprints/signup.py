"""Sign-up (sign-in.md "Accounts"): email → a 6-digit code → details and a password (or a
passkey instead) → signed in. The pending sign-up lives in the signed flow cookie; only
its challenge id, never the code or the password.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from consent.contact_details import email_problem, name_problem
from idp import interactions
from idp.accounts import AccountError, create_account
from idp.attempts import guess_succeeded, reserve_email, reserve_guess
from idp.email_codes import check_code, issue_code
from idp.errors import PageError
from idp.forms import completed, remember_outcome
from idp.login_sessions import start_session
from idp.mail import send_already_registered, send_code
from idp.models import Account, EmailChallenge
from idp.password_policy import password_problem
from idp.services import db

bp = Blueprint("signup", __name__)

KEY = "signup"
MAX_NAME = 200


def _pending() -> dict[str, str]:
    pending = session.get(KEY)
    if not isinstance(pending, dict) or "challenge" not in pending:
        raise PageError("Your sign-up has expired", "Start again to create your account.")
    return pending


def _challenge(pending: dict[str, str]) -> EmailChallenge:
    challenge = db().get(EmailChallenge, pending["challenge"])
    if challenge is None or challenge.purpose != "signup" or challenge.consumed_at is not None:
        raise PageError("Your sign-up has expired", "Start again to create your account.")
    return challenge


@bp.route("/signup", methods=["GET", "POST"])
def start() -> ResponseReturnValue:
    interaction = request.values.get("interaction", "")
    if request.method == "GET":
        return render_template("signup/email.html", email="", errors={}, interaction=interaction)
    email = request.form.get("email", "").strip().lower()
    if problem := email_problem(email):
        html = render_template("signup/email.html", email=email[:320], errors={"email": problem},
                               interaction=interaction)
        return Response(html, status=400)
    reserve_email(email)
    session[KEY] = pending = {"challenge": send_email_code(email), "interaction": interaction}
    return completed(url_for("signup.code"), flow={KEY: pending})


def send_email_code(email: str) -> str:
    """The same page and work whether or not the email is registered (no enumeration)."""
    existing = db().scalar(select(Account.id).where(Account.email == email))
    challenge, code = issue_code(db(), purpose="signup", email=email, account_id=None)
    if existing is None:
        send_code(db(), to=email, code=code, purpose="signup")
    else:
        send_already_registered(db(), to=email)
    return challenge.id


@bp.route("/signup/code", methods=["GET", "POST"])
def code() -> ResponseReturnValue:
    pending = _pending()
    challenge = _challenge(pending)
    if request.method == "GET":
        return render_template("signup/code.html", email=challenge.email, errors={})
    reserve_guess(challenge.email)
    result = check_code(db(), challenge, request.form.get("code", "")[:20])
    if result.ok:
        guess_succeeded()
        remember_outcome(url_for("signup.details"))
    db().commit()
    if not result.ok:
        html = render_template("signup/code.html", email=challenge.email, errors={"code": result.message},
                               exhausted=result.exhausted)
        return Response(html, status=400)
    return redirect(url_for("signup.details"))


@bp.route("/signup/details", methods=["GET", "POST"])
def details() -> ResponseReturnValue:
    challenge = _challenge(_pending())
    if challenge.verified_at is None:
        return redirect(url_for("signup.code"))
    if request.method == "GET":
        return render_template("signup/details.html", form={}, errors={})
    form = {name: request.form.get(name, "").strip()[:MAX_NAME] for name in
            ("given_name", "family_name", "day", "month", "year", "method")}
    password = request.form.get("password", "")
    errors = details_problems(form, password, challenge.email)
    if errors:
        return Response(render_template("signup/details.html", form=form, errors=errors), status=400)
    return finish(challenge, form, password if form["method"] == "password" else None)


def details_problems(form: dict[str, str], password: str, email: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not form["given_name"]:
        errors["given_name"] = "Enter your first name"
    elif problem := name_problem(form["given_name"]):
        errors["given_name"] = problem
    if not form["family_name"]:
        errors["family_name"] = "Enter your last name"
    elif problem := name_problem(form["family_name"]):
        errors["family_name"] = problem
    if any(form[part] for part in ("day", "month", "year")) and birthdate(form) is None:
        errors["day"] = "Date of birth must be a real date in the past, like 27 3 1990"
    if form["method"] not in {"password", "passkey"}:
        errors["method-password"] = "Choose how you want to sign in"
    elif form["method"] == "password" and (problem := password_problem(password, email=email)):
        errors["password"] = problem
    return errors


def birthdate(form: dict[str, str]) -> dt.date | None:
    try:
        born = dt.date(int(form["year"]), int(form["month"]), int(form["day"]))
    except ValueError:
        return None
    return born if dt.date(1900, 1, 1) <= born < dt.date.today() else None


def finish(challenge: EmailChallenge, form: dict[str, str], password: str | None) -> ResponseReturnValue:
    try:
        account = create_account(db(), email=challenge.email, given_name=form["given_name"],
                                 family_name=form["family_name"], password=password, birthdate=birthdate(form))
    except AccountError as error:
        raise PageError("You cannot create this account", str(error)) from None
    challenge.consumed_at = challenge.verified_at
    # The email code is the factor that proved this person (RFC 8176 "otp" for a one-time code).
    start_session(account, acr="Cl", amr=["pwd"] if password else ["otp"])
    pending = session.pop(KEY, {})
    return completed(url_for("signup.done", interaction=pending.get("interaction") or None,
                        passkey=None if password else "1"))


@bp.get("/signup/done")
def done() -> Response | str:
    interaction = interactions.load(request.args.get("interaction"))
    if interaction is not None:
        interaction.login_done = True
        interactions.save(interaction)
    passkey_first = request.args.get("passkey") == "1"
    next_url = url_for("authorize.resume", interaction_id=interaction.id) if interaction else url_for("home.index")
    return render_template("signup/done.html", next_url=next_url, passkey_first=passkey_first)
