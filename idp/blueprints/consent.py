"""The consent page: the agency, each claim in plain English, the purpose, how long consent lasts,
Allow or Do not allow; the decision is recorded in the consent ledger in the same transaction."""

from __future__ import annotations

import datetime as dt

from authlib.oauth2.rfc6749.errors import AccessDeniedError
from flask import Blueprint, Response, redirect, render_template, request, url_for

from consent.consents import record_decision
from idp import interactions
from idp.consent_ledger import ledger
from idp.db import utcnow
from idp.blueprints.authorize import build_oauth_request, error_redirect, load_client
from idp.errors import PageError
from idp.forms import remember_outcome
from idp.login_sessions import current_session
from idp.oauth.claims import SCOPE_CLAIM_NAMES, SCOPE_DESCRIPTIONS
from idp.services import db

bp = Blueprint("consent", __name__)


@bp.route("/consent/<interaction_id>", methods=["GET", "POST"])
def decide(interaction_id: str) -> Response | str:
    interaction = interactions.load(interaction_id)
    login = current_session()
    if interaction is None or login is None:
        raise PageError("This sign-in has expired", "Go back to the service you were using and start again.")
    client, redirect_uri = load_client(interaction.params, [])
    requested = client.get_allowed_scope(build_oauth_request(interaction.params, client).payload.scope).split()
    optional = [scope for scope in requested if scope != "openid"]
    if request.method == "GET":
        return render_template("consent/decide.html", client=client, scopes=optional, descriptions=SCOPE_DESCRIPTIONS,
                               claims=SCOPE_CLAIM_NAMES, interaction=interaction,
                               lasts_until=utcnow() + dt.timedelta(days=client.consent_days))
    decision = request.form.get("decision")
    if decision == "deny":
        interactions.finish(interaction)
        return error_redirect(redirect_uri, AccessDeniedError("The citizen did not allow access."),
                              interaction.params.get("state"))
    if decision != "allow":
        raise PageError("Choose whether to share", "Select Allow or Do not allow.")
    chosen = set(request.form.getlist("scope")) & set(optional)
    record_decision(db(), login.account_id, client.agency_id, granted=chosen, denied=set(optional) - chosen,
                    ledger=ledger(), client_id=client.client_id, purpose=client.purpose, days=client.consent_days)
    resume = url_for("authorize.resume", interaction_id=interaction.id)
    remember_outcome(resume)
    db().commit()
    interaction.consent_done = True
    interactions.save(interaction)
    return redirect(resume)
