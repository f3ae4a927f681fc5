"""Passkeys over HTTP: the citizen's passkey pages and the JSON ceremony endpoints that
idp/static/passkeys.js calls (sign-in.md "Passkeys"). The ceremonies themselves are in
:mod:`idp.passkeys`; this module keeps the browser's side of them.

Pages (they work without script, except for the ceremony itself):

* ``/passkeys`` lists the citizen's passkeys; ``/passkeys/add`` adds one (sign-up links here,
  optionally with ``?next=`` a local path); ``/passkeys/<id>/rename`` and ``/passkeys/<id>/remove``;
* ``/signin/passkey`` asks a signed-in citizen to use a passkey: as a second factor after a
  password, and as the step-up of an authorization request (``idp.blueprints.authorize``).

JSON endpoints (``POST``, ``application/json``, CSRF token in the ``X-CSRF-Token`` header):
``/passkeys/{register,signin,confirm}/options`` start a ceremony and answer ``{"options": …}``
(the ``publicKey`` member for ``navigator.credentials``); ``…/verify`` finish it with
``{"credential": …}`` and answer ``{"redirect": url}``. Errors answer ``{"error", "message"}``.
The ceremony's challenge id is kept in the browser's signed session, never taken from the body,
so a ceremony can only be finished by the browser that started it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from idp import interactions
from idp import passkey_reset as lost
from idp import passkeys as ceremonies
from idp.assurance import TWO_FACTOR, combine_amr
from idp.attempts import reserve_email
from idp.blueprints.authorize import acr_request
from idp.errors import PageError
from idp.forms import completed
from idp.interactions import Interaction
from idp.login_sessions import client_network, current_session, start_session, step_up_session
from idp.mail import send_credential_changed
from idp.models import LoginSession
from idp.oauth.server import query_client
from idp.passkeys import PasskeyError, RelyingParty
from idp.security import HEADER_CSRF_ENDPOINTS, csrf_header_valid
from idp.services import db, services, throttle
from idp.throttle import (
    CEREMONIES_PER_NETWORK,
    SIGN_IN_PER_NETWORK,
    Limit,
    TooManyAttempts,
    ceremony_key,
    ip_key,
    reserve_all,
    wait_words,
)

bp = Blueprint("passkeys", __name__)

RP_NAME = "Public Services Sign-in"
_CEREMONIES = "webauthn_ceremonies"  # Flask session key: {kind: challenge id}
EXPIRED = ("This sign-in has expired", "Go back to the service you were using and start again.")


@bp.before_request
def check_script_request() -> None:
    """The ceremony endpoints take JSON only, with the CSRF token in a header (idp.security)."""
    if request.endpoint not in HEADER_CSRF_ENDPOINTS:
        return
    if not request.is_json:
        raise PasskeyError("invalid_request", "Send the request as application/json.", 415)
    if not csrf_header_valid():
        raise PasskeyError("invalid_csrf_token", "Your session has expired. Reload the page and try again.", 403)


# --- ceremonies: adding a passkey ----------------------------------------------------------

@bp.post("/passkeys/register/options")
def register_options() -> Response:
    login = signed_in_for_script()
    require_change_allowed(login)
    return started("register", ceremonies.start_registration(db(), relying_party(), login.account))


@bp.post("/passkeys/register/verify")
def register_verify() -> Response:
    login = signed_in_for_script()
    require_change_allowed(login)
    data = json_body()
    challenge = spend("register", "register", login.account_id)
    ceremonies.finish_registration(db(), relying_party(), login.account, challenge, data.get("credential"),
                                   str(data.get("name") or ""))
    send_credential_changed(db(), to=login.account.email, what="passkey list")
    db().commit()
    return finished(local_path(data.get("next")) or url_for("passkeys.manage", added=1))


# --- ceremonies: signing in with a passkey alone (usernameless) ----------------------------

@bp.post("/passkeys/signin/options")
def signin_options() -> Response:
    network_not_blocked()
    # Each start stores a challenge: every start counts.
    reserve_for_network(Limit(ceremony_key(client_network()), CEREMONIES_PER_NETWORK))
    return started("signin", ceremonies.start_authentication(db(), relying_party(), None))


@bp.post("/passkeys/signin/verify")
def signin_verify() -> Response:
    """A discoverable credential with user verification is two factors: ``Cl.Cm``."""
    # Reserved before the check, counted with failed passwords from the same network.
    network = reserve_for_network(Limit(ip_key(client_network()), SIGN_IN_PER_NETWORK))
    data = json_body()
    interaction = pending_interaction(data.get("interaction"))
    challenge = spend("signin", "authenticate", None)
    try:
        result = ceremonies.finish_authentication(db(), relying_party(), challenge, data.get("credential"),
                                                  account=None)
    except PasskeyError:
        db().rollback()  # the reservation, committed, stays: a failure
        raise
    throttle().release(network.key, network.budget)  # a passkey that works costs the network nothing
    start_session(result.account, acr=TWO_FACTOR, amr=result.amr)
    lost.cancel_reset(db(), result.account)  # the owner has a passkey after all
    db().commit()
    return finished(continue_to(interaction, None, signed_in_now=True))


# --- ceremonies: confirming a signed-in citizen (second factor, step-up) --------------------

@bp.post("/passkeys/confirm/options")
def confirm_options() -> Response:
    login = signed_in_for_script()
    if not ceremonies.has_passkeys(db(), login.account_id):
        raise PasskeyError("no_passkey", "You have not set up a passkey.")
    return started("confirm", ceremonies.start_authentication(db(), relying_party(), login.account))


@bp.post("/passkeys/confirm/verify")
def confirm_verify() -> Response:
    """The session gains a factor: ``Cl.Cm`` under a new id (no fixation), the same ``sid``."""
    login = signed_in_for_script()
    data = json_body()
    interaction = pending_interaction(data.get("interaction"))
    challenge = spend("confirm", "authenticate", login.account_id)
    result = ceremonies.finish_authentication(db(), relying_party(), challenge, data.get("credential"),
                                              account=login.account)
    step_up_session(login, acr=TWO_FACTOR, amr=combine_amr(login.amr, result.amr))
    lost.cancel_reset(db(), login.account)  # the owner has a passkey after all
    db().commit()
    return finished(continue_to(interaction, local_path(data.get("next")), signed_in_now=True))


# --- pages ---------------------------------------------------------------------------------

@bp.route("/signin/passkey", methods=["GET", "POST"])
def confirm() -> ResponseReturnValue:
    """Use a passkey now, or continue without one (POST ``decision=skip``)."""
    login = current_session()
    interaction = pending_interaction_page(request.values.get("interaction"))
    next_path = local_path(request.values.get("next"))
    if login is None:
        raise PageError(*EXPIRED)
    if request.method == "POST":
        if request.form.get("decision") != "skip":
            raise PageError("There is a problem", "Choose whether to use your passkey.")
        if interaction is not None:
            interaction.step_up_declined = True
            interactions.save(interaction)
        return redirect(continue_to(interaction, None, signed_in_now=False))
    if login.acr == TWO_FACTOR or not ceremonies.has_passkeys(db(), login.account_id):
        return redirect(continue_to(interaction, next_path, signed_in_now=False))
    return render_template("passkeys/confirm.html", interaction=interaction, next_path=next_path,
                           service_asks=service_asks(interaction))


@bp.get("/passkeys")
def manage() -> str:
    login = signed_in_page()
    if lost.apply_if_due(db(), login.account):
        db().commit()
    return render_template("passkeys/manage.html", passkeys=ceremonies.list_passkeys(db(), login.account_id),
                           can_change=change_allowed(login), has_password=login.account.password_hash is not None,
                           reset_at=login.account.passkeys_reset_at, done=request.args.get("done"),
                           added=request.args.get("added") == "1", removed=request.args.get("removed") == "1")


@bp.route("/passkeys/lost", methods=["GET", "POST"])
def report_lost() -> ResponseReturnValue:
    """sign-in.md "Account recovery": every passkey lost; they are removed after a week's notice."""
    login = signed_in_page()
    if change_allowed(login):  # signed in with a passkey, or none left: nothing to wait for
        return redirect(url_for("passkeys.manage"))
    if request.method == "GET":
        return render_template("passkeys/lost.html", wait_days=lost.WAIT.days, errors={})
    if request.form.get("confirm") != "yes":
        html = render_template("passkeys/lost.html", wait_days=lost.WAIT.days,
                               errors={"confirm": "Select yes if you have lost all your passkeys"})
        return Response(html, status=400)
    if login.account.passkeys_reset_at is None:  # asking again sends nothing
        reserve_email(login.account.email)
    lost.request_reset(db(), login.account)
    return completed(url_for("passkeys.manage", done="lost"))


@bp.post("/passkeys/lost/cancel")
def cancel_lost() -> ResponseReturnValue:
    login = signed_in_page()
    lost.cancel_reset(db(), login.account)
    return completed(url_for("passkeys.manage", done="kept"))


@bp.get("/passkeys/add")
def add() -> ResponseReturnValue:
    login = signed_in_page()
    if lost.apply_if_due(db(), login.account):
        db().commit()
    if not change_allowed(login):
        return redirect(url_for("passkeys.confirm", next=request.full_path.rstrip("?")))
    return render_template("passkeys/add.html", next_path=local_path(request.args.get("next")))


@bp.route("/passkeys/<credential_id>/rename", methods=["GET", "POST"])
def rename(credential_id: str) -> ResponseReturnValue:
    login = signed_in_page()
    passkey = ceremonies.get_passkey(db(), login.account_id, credential_id)
    if request.method == "GET":
        return render_template("passkeys/rename.html", passkey=passkey, errors={}, name=passkey.name)
    name = request.form.get("name", "")
    if not name.strip() or len(name) > ceremonies.MAX_NAME:
        errors = {"name": f"Enter a name for your passkey, up to {ceremonies.MAX_NAME} characters"}
        html = render_template("passkeys/rename.html", passkey=passkey, errors=errors, name=name[:200])
        return Response(html, status=400)
    ceremonies.rename_passkey(db(), login.account_id, credential_id, name)
    return completed(url_for("passkeys.manage"))


@bp.route("/passkeys/<credential_id>/remove", methods=["GET", "POST"])
def remove(credential_id: str) -> ResponseReturnValue:
    login = signed_in_page()
    if not change_allowed(login):
        return redirect(url_for("passkeys.confirm", next=url_for("passkeys.manage")))
    passkey = ceremonies.get_passkey(db(), login.account_id, credential_id)
    if request.method == "GET" or request.form.get("decision") != "remove":
        return render_template("passkeys/remove.html", passkey=passkey, error=None)
    try:
        ceremonies.remove_passkey(db(), login.account_id, credential_id)
    except PasskeyError as error:
        return Response(render_template("passkeys/remove.html", passkey=passkey, error=error.message), error.status)
    send_credential_changed(db(), to=login.account.email, what="passkey list")
    return completed(url_for("passkeys.manage", removed=1))


# --- helpers -------------------------------------------------------------------------------

def relying_party() -> RelyingParty:
    settings = services().settings
    return RelyingParty(id=settings.passkey_rp_id, origin=settings.passkey_origin, name=RP_NAME,
                        challenge_ttl=settings.webauthn_challenge_ttl)


def started(kind: str, ceremony: ceremonies.Ceremony) -> Response:
    """Keep the challenge id in this browser's session and send the options to the script."""
    db().commit()
    pending = dict(session.get(_CEREMONIES, {}))
    pending[kind] = ceremony.id
    session[_CEREMONIES] = pending
    return no_store(jsonify(options=ceremony.options))


def network_not_blocked() -> None:
    """sign-in.md "Throttling": the usernameless ceremony names no account, so only the network's
    count applies, the same one failed passwords add to."""
    if (wait := throttle().blocked_for(ip_key(client_network()))) is not None:
        raise too_many_attempts(wait)


def reserve_for_network(limit: Limit) -> Limit:
    """One attempt of the network's ``limit``, reserved and committed before the work (idp.throttle)."""
    try:
        reserve_all(throttle(), [limit])
    except TooManyAttempts as refused:
        db().rollback()
        raise too_many_attempts(refused.wait) from None
    db().commit()
    return limit


def too_many_attempts(wait: dt.timedelta) -> PasskeyError:
    return PasskeyError("too_many_attempts", f"Too many attempts to sign in. Wait {wait_words(wait)} and try again.",
                        429)


def spend(kind: str, purpose: str, account_id: str | None) -> bytes:
    """Consume this browser's challenge, and commit: it stays spent even if the response then fails."""
    pending = dict(session.get(_CEREMONIES, {}))
    ceremony_id = pending.pop(kind, None)
    session[_CEREMONIES] = pending
    challenge = ceremonies.consume_challenge(db(), ceremony_id, purpose, account_id)
    db().commit()
    return challenge


def finished(url: str) -> Response:
    return no_store(jsonify(redirect=url))


def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise PasskeyError("invalid_request", "The request must be a JSON object.")
    return body


def signed_in_for_script() -> LoginSession:
    login = current_session()
    if login is None:
        raise PasskeyError("not_signed_in", "You are not signed in. Sign in and try again.", 401)
    return login


def signed_in_page() -> LoginSession:
    login = current_session()
    if login is None:
        abort(redirect(url_for("signin.signin", next=request.path)))
    return login


def change_allowed(login: LoginSession) -> bool:
    """Adding or removing a passkey needs one of the citizen's passkeys when they have any, so a
    password alone cannot swap in a new second factor (remove theirs, add the attacker's)."""
    return login.acr == TWO_FACTOR or not ceremonies.has_passkeys(db(), login.account_id)


def require_change_allowed(login: LoginSession) -> None:
    if not change_allowed(login):
        raise PasskeyError("step_up_required", "Use one of your passkeys first, then try again.", 403)


def pending_interaction(interaction_id: Any) -> Interaction | None:
    if interaction_id is None:
        return None
    interaction = interactions.load(interaction_id) if isinstance(interaction_id, str) else None
    if interaction is None:
        raise PasskeyError("interaction_expired", " ".join(EXPIRED) + ".")
    return interaction


def pending_interaction_page(interaction_id: str | None) -> Interaction | None:
    interaction = interactions.load(interaction_id) if interaction_id else None
    if interaction_id and interaction is None:
        raise PageError(*EXPIRED)
    return interaction


def continue_to(interaction: Interaction | None, next_path: str | None, *, signed_in_now: bool) -> str:
    """Back to the authorization request, if there is one, else to ``next`` or the start page.
    A passkey used within a request is an authentication, so ``prompt=login`` is satisfied."""
    if interaction is not None:
        if signed_in_now:
            interaction.login_done = True
            interactions.save(interaction)
        return url_for("authorize.resume", interaction_id=interaction.id)
    return next_path or url_for("home.index")


def service_asks(interaction: Interaction | None) -> bool:
    """Did the service ask for ``Cl.Cm``? (The page explains why it asks for a passkey.)"""
    client = query_client(interaction.params.get("client_id")) if interaction else None
    if interaction is None or client is None:
        return False
    try:
        return acr_request(interaction.params, client) is not None
    except OAuth2Error:  # an invalid claims parameter is reported by the authorize step itself
        return False


def local_path(value: Any) -> str | None:
    """Only a path on this service (no scheme, no host, no ``//``) may be a ``next`` target."""
    if not isinstance(value, str) or len(value) > 500 or not value.startswith("/"):
        return None
    if value.startswith(("//", "/\\")) or any(ch in value for ch in "\\\r\n\t"):
        return None
    return value
