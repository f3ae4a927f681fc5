"""Account recovery (sign-in.md): an email code lets the citizen set a new password. The
recovered session is ``Cl`` (one factor) until a passkey is used again; every other session
of the account ends, and the owner is told the password changed."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from consent.contact_details import email_problem
from idp.attempts import guess_succeeded, reserve_email, reserve_guess
from idp.email_codes import WRONG_CODE, CodeCheck, check_code, issue_code
from idp.errors import PageError
from idp.forms import completed, remember_outcome
from idp.login_sessions import end_session, live_sessions, start_session
from idp.mail import send_code, send_credential_changed
from idp.models import Account, EmailChallenge
from idp.oauth.tokens import revoke_families_held_by
from idp.password_policy import password_problem
from idp.passwords import hash_password
from idp.services import db

bp = Blueprint("recovery", __name__)

KEY = "recovery"


@bp.route("/recover", methods=["GET", "POST"])
def start() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("recovery/email.html", email="", errors={})
    email = request.form.get("email", "").strip().lower()
    if problem := email_problem(email):
        errors = {"email": problem}
        return Response(render_template("recovery/email.html", email=email[:320], errors=errors), status=400)
    reserve_email(email)  # whether or not the address has an account
    account = db().scalar(select(Account).where(Account.email == email, Account.status == "active"))
    # Same page either way (no enumeration); only a real owner gets a code.
    challenge, code = issue_code(db(), purpose="recovery", email=email, account_id=account.id if account else None)
    if account is not None:
        send_code(db(), to=email, code=code, purpose="recovery")
    session[KEY] = challenge.id
    return completed(url_for("recovery.code"), flow={KEY: challenge.id})


def _challenge() -> EmailChallenge:
    challenge = db().get(EmailChallenge, str(session.get(KEY, "")))
    if challenge is None or challenge.purpose != "recovery" or challenge.consumed_at is not None:
        raise PageError("Your password reset has expired", "Start again to reset your password.")
    return challenge


@bp.route("/recover/code", methods=["GET", "POST"])
def code() -> ResponseReturnValue:
    challenge = _challenge()
    if request.method == "GET":
        return render_template("signup/code.html", email=challenge.email, errors={})
    reserve_guess(challenge.email)
    result = check_code(db(), challenge, request.form.get("code", "")[:20])
    if challenge.account_id is None:  # no such account, so no code was sent: always a wrong code
        result = CodeCheck(False, WRONG_CODE)
    if result.ok:
        remember_outcome(url_for("recovery.password"))
        guess_succeeded()
    db().commit()
    if not result.ok:
        html = render_template("signup/code.html", email=challenge.email, errors={"code": result.message})
        return Response(html, status=400)
    return redirect(url_for("recovery.password"))


@bp.route("/recover/password", methods=["GET", "POST"])
def password() -> ResponseReturnValue:
    challenge = _challenge()
    if challenge.verified_at is None or challenge.account_id is None:
        return redirect(url_for("recovery.code"))
    if request.method == "GET":
        return render_template("recovery/password.html", errors={})
    account = db().get(Account, challenge.account_id)
    new_password = request.form.get("password", "")
    if account is None or account.status != "active":
        raise PageError("Your password reset has expired", "Start again to reset your password.")
    if problem := password_problem(new_password, email=account.email):
        return Response(render_template("recovery/password.html", errors={"password": problem}), status=400)
    account.password_hash = hash_password(new_password)
    challenge.consumed_at = challenge.verified_at
    for other in live_sessions(db(), account.id):
        end_session(db(), other)
    revoke_families_held_by(db(), account.id, "password_recovered")  # whoever had the old password
    send_credential_changed(db(), to=account.email, what="password")
    start_session(account, acr="Cl", amr=["pwd"])
    session.pop(KEY, None)
    return completed(url_for("home.index"))
