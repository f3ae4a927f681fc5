"""The citizen's own account: profile, password, sessions ("Your sessions"), deletion."""

from __future__ import annotations

from functools import wraps
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import delete as sql_delete
from sqlalchemy import select

from consent.contact_details import name_problem
from consent.erasure import erase_from_ledger
from idp.consent_ledger import ledger
from idp.forms import completed, remember_outcome
from idp.login_sessions import current_session, end_current_session, end_session, live_sessions, start_session
from idp.mail import send_account_deleted, send_credential_changed
from idp.models import Account, Client, LoginSession, Passkey, SessionParticipant
from idp.oauth.tokens import revoke_families_of
from idp.password_policy import password_problem
from idp.passwords import hash_password, verify_password
from idp.services import db
from store.db import utcnow

bp = Blueprint("account", __name__, url_prefix="/account")
MAX_NAME = 200


def signed_in(view: Any) -> Any:
    """The view needs a live session; otherwise sign in and come back."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        login = current_session()
        if login is None:
            return redirect(url_for("signin.signin", next=request.path))
        g.account = login.account
        return view(*args, **kwargs)

    return wrapper


@bp.route("", methods=["GET", "POST"])
@signed_in
def profile() -> ResponseReturnValue:
    account: Account = g.account
    if request.method == "GET":
        return render_template("account/profile.html", account=account, errors={}, saved=False)
    given = request.form.get("given_name", "").strip()[:MAX_NAME]
    family = request.form.get("family_name", "").strip()[:MAX_NAME]
    phone = request.form.get("phone_number", "").strip()[:40]
    errors = {}
    if not given:
        errors["given_name"] = "Enter your first name"
    elif problem := name_problem(given):
        errors["given_name"] = problem
    if not family:
        errors["family_name"] = "Enter your last name"
    elif problem := name_problem(family):
        errors["family_name"] = problem
    if phone and not phone.replace(" ", "").lstrip("+").isdigit():
        errors["phone_number"] = "Enter a phone number, like 01632 960 001 or +44 808 157 0192"
    if errors:
        return Response(render_template("account/profile.html", account=account, errors=errors, saved=False), 400)
    account.given_name, account.family_name = given, family
    if phone != (account.phone_number or ""):
        account.phone_number, account.phone_number_verified = phone or None, False
    remember_outcome(url_for("account.profile"))
    db().commit()
    return render_template("account/profile.html", account=account, errors={}, saved=True)


@bp.route("/password", methods=["GET", "POST"])
@signed_in
def password() -> ResponseReturnValue:
    account: Account = g.account
    if request.method == "GET":
        return render_template("account/password.html", errors={}, has_password=account.password_hash is not None)
    current, new = request.form.get("current_password", ""), request.form.get("password", "")
    errors = {}
    if account.password_hash is not None and not verify_password(account.password_hash, current[:1024]):
        errors["current_password"] = "Your current password is not correct"
    elif problem := password_problem(new, email=account.email):
        errors["password"] = problem
    if errors:
        html = render_template("account/password.html", errors=errors, has_password=account.password_hash is not None)
        return Response(html, status=400)
    account.password_hash = hash_password(new)
    send_credential_changed(db(), to=account.email, what="password")
    login = current_session()
    assert login is not None
    start_session(account, acr=login.acr, amr=login.amr)  # a credential change rotates the session id
    return completed(url_for("account.profile"))


@bp.get("/sessions")
@signed_in
def sessions() -> str:
    current = current_session()
    rows = [(login, services_of(login)) for login in live_sessions(db(), g.account.id)]
    return render_template("account/sessions.html", rows=rows, current=current)


def services_of(login: LoginSession) -> list[str]:
    query = (select(Client.name).join(SessionParticipant, SessionParticipant.client_id == Client.client_id)
             .where(SessionParticipant.session_id == login.id).order_by(Client.name))
    return list(db().scalars(query))


@bp.post("/sessions/<sid>/end")
@signed_in
def end(sid: str) -> ResponseReturnValue:
    """Sign out of one session (of this account only); its services get back-channel logout."""
    login = db().scalar(select(LoginSession).where(LoginSession.sid == sid, LoginSession.account_id == g.account.id))
    current = current_session()
    if login is not None and current is not None and login.id == current.id:
        end_current_session()
    elif login is not None:
        end_session(db(), login)
    return completed(url_for("account.sessions"))


@bp.route("/delete", methods=["GET", "POST"])
@signed_in
def delete() -> ResponseReturnValue:
    account: Account = g.account
    if request.method == "GET":
        return render_template("account/delete.html", errors={})
    if request.form.get("confirm") != "delete":
        errors = {"confirm": "Select yes if you want to delete your account"}
        return Response(render_template("account/delete.html", errors=errors), status=400)
    delete_account(account)
    remember_outcome(url_for("home.index"))
    db().commit()
    return render_template("account/deleted.html")


def delete_account(account: Account) -> None:
    """Sessions end (back-channel logout), tokens are revoked, and the account's data is removed."""
    for login in live_sessions(db(), account.id):
        end_session(db(), login)
    end_current_session()
    revoke_families_of(db(), account_id=account.id, client_ids=None, reason="account_deleted")
    erase_from_ledger(db(), account.id, ledger=ledger())  # consent-ledger.md: entries stay, tied to no one
    send_account_deleted(db(), to=account.email)
    account.status, account.updated_at = "deleted", utcnow()
    erase_personal_data(account)


def erase_personal_data(account: Account) -> None:
    """Keep only the row that tokens and outbox messages point at, with nothing personal left."""
    account.email = f"deleted-{account.id}@invalid"
    account.given_name = account.family_name = "Deleted"
    account.birthdate = account.phone_number = account.address = account.password_hash = None
    account.email_verified = account.phone_number_verified = False
    db().execute(sql_delete(Passkey).where(Passkey.account_id == account.id))
