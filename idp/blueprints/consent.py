"""The consent page: the agency, each claim in plain English, the purpose, how long consent lasts,
Allow or Do not allow; the decision is recorded in the consent ledger in the same transaction.

A parent acting for a child profile gets the same page, in their words about the child by name,
and their decision is recorded as the child's consent (``idp.acting.parent_decides``)."""

from __future__ import annotations

import datetime as dt

from authlib.oauth2.rfc6749.errors import AccessDeniedError
from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from consent.consents import record_decision
from idp import interactions
from idp.acting import grant_for, parent_decides, scopes_to_ask_for
from idp.blueprints.authorize import build_oauth_request, error_redirect, load_client, requested_scope
from idp.consent_ledger import ledger
from idp.errors import PageError
from idp.forms import remember_outcome
from idp.interactions import Interaction
from idp.login_sessions import current_session
from idp.models import Account, Client, LoginSession
from idp.oauth.claims import SCOPE_CLAIM_NAMES, SCOPE_CLAIMS, SCOPE_DESCRIPTIONS, released_claims
from idp.services import db
from store.db import utcnow

bp = Blueprint("consent", __name__)


@bp.route("/consent/<interaction_id>", methods=["GET", "POST"])
def decide(interaction_id: str) -> ResponseReturnValue:
    interaction = interactions.load(interaction_id)
    login = current_session()
    if interaction is None or login is None:
        raise PageError("This sign-in has expired", "Go back to the service you were using and start again.")
    client, redirect_uri = load_client(interaction.params, [])
    requested = client.get_allowed_scope(requested_scope(build_oauth_request(interaction.params, client))).split()
    subject, child, asked = whose_consent(login, client, interaction, requested)
    optional = [scope for scope in asked if scope != "openid"]
    offered = optional if child is None else [scope for scope in optional if has_something(child, scope)]
    if request.method == "GET":
        whose = "your" if child is None else f"{child.given_name}'s"
        descriptions = {scope: text.replace("your ", whose + " ") for scope, text in SCOPE_DESCRIPTIONS.items()}
        return render_template("consent/decide.html", client=client, scopes=offered, descriptions=descriptions,
                               claims=SCOPE_CLAIM_NAMES, interaction=interaction, child=child, whose=whose,
                               lasts_until=utcnow() + dt.timedelta(days=client.consent_days))
    decision = request.form.get("decision")
    if decision == "deny":
        interactions.finish(interaction)
        return error_redirect(redirect_uri, AccessDeniedError("The citizen did not allow access."),
                              interaction.params.get("state"))
    if decision != "allow":
        raise PageError("Choose whether to share", "Select Allow or Do not allow.")
    chosen = set(request.form.getlist("scope")) & set(offered)
    record_decision(db(), subject.id, client.agency_id, granted=chosen, denied=set(optional) - chosen,
                    ledger=ledger(), client_id=client.client_id, purpose=client.purpose, days=client.consent_days)
    resume = url_for("authorize.resume", interaction_id=interaction.id)
    remember_outcome(resume)
    db().commit()
    interaction.consent_done = True
    interactions.save(interaction)
    return redirect(resume)


def whose_consent(login: LoginSession, client: Client, interaction: Interaction,
                  requested: list[str]) -> tuple[Account, Account | None, list[str]]:
    """Whose details the page asks about, the child profile if a parent is deciding for one, and
    the scopes asked about. Nobody else acting for someone is ever asked: the principal decides."""
    if not (interaction.who_chosen and interaction.acting_for):
        return login.account, None, requested
    grant = grant_for(db(), client, interaction.acting_for, login.account_id, requested)
    child = parent_decides(db(), grant)
    if child is None:
        raise PageError("You cannot decide this", "Only the person you are helping can decide what is shared "
                        "about them. Ask them to do it from their own account.", 403)
    return child, child, scopes_to_ask_for(db(), grant, requested)


def has_something(child: Account, scope: str) -> bool:
    """A scope of claims the child profile has a value for (it has no email): only those are offered."""
    return scope not in SCOPE_CLAIMS or bool(released_claims(child, {scope}, by_scope=True, requested=None))
