"""The authorize pipeline's "Who are you using this service for?" step (delegation.md "Act").

After sign-in, if any delegation in force lets the signed-in person act for someone with this
client, they choose: Myself, or one of those people. Choosing a principal makes the code (and
every token from it) for the principal, with the delegate named as actor.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from consent.acting import ActingGrant, may_act_for
from consent.errors import NotAllowedToAct
from idp import interactions
from idp.acting import ActingNow, acting_in_session, grant_for, record_acting
from idp.consent_ledger import ledger
from idp.errors import PageError
from idp.interactions import Interaction
from idp.login_sessions import current_session, session_cookie_name
from idp.models import Account, Client, LoginSession
from idp.services import db

bp = Blueprint("acting", __name__)
ASK: Literal["ask"] = "ask"


@bp.app_context_processor
def acting_banner() -> dict[str, Any]:
    """delegation.md "Act": a banner on every page says whom the signed-in person is acting for."""

    def acting_now() -> list[ActingNow]:
        if request.cookies.get(session_cookie_name()) is None:
            return []
        login = current_session()
        return [] if login is None else acting_in_session(db(), login)

    return {"acting_now": acting_now}


def who_is_served(login: LoginSession, prompts: set[str], scopes: list[str], client: Client,
                  interaction: Interaction | None) -> ActingGrant | None | Literal["ask"]:
    """The pipeline step: None (Myself), the checked grant chosen, or ASK for the choice page.

    ``prompt=none`` never shows UI (OIDC Core §3.1.2.1), so it signs in as Myself."""
    if not client.delegation_supported:
        return None  # delegation.md: such clients never get acting-for tokens
    if interaction is not None and interaction.who_chosen:
        if interaction.acting_for is None:
            return None
        return grant_for(db(), client, interaction.acting_for, login.account_id, scopes)
    if "none" in prompts or not may_act_for(db(), login.account_id, agency_id=client.agency_id):
        return None
    return ASK


def act(client: Client, grant: ActingGrant) -> Account:
    """Record the acting-for sign-in (ledger) and return the principal the code is for."""
    principal = db().get(Account, grant.principal_id)
    if principal is None or principal.status != "active":
        raise NotAllowedToAct("You cannot use this service for that person.")
    record_acting(db(), ledger(), client, grant)
    return principal


@bp.route("/authorize/who/<interaction_id>", methods=["GET", "POST"])
def choose(interaction_id: str) -> ResponseReturnValue:
    interaction = interactions.load(interaction_id)
    login = current_session()
    if interaction is None or login is None:
        raise PageError("This sign-in has expired", "Go back to the service you were using and start again.")
    from idp.blueprints.authorize import load_client

    client, _redirect_uri = load_client(interaction.params, [])
    options = may_act_for(db(), login.account_id, agency_id=client.agency_id)
    if request.method == "GET":
        people = {a.id: a for a in db().query(Account).filter(Account.id.in_({d.principal_id for d in options}))}
        return render_template("delegation/choose.html", client=client, options=options, people=people,
                               account=login.account)
    choice = request.form.get("who", "")
    if choice == "myself":
        interaction.acting_for = None
    elif choice in {d.id for d in options}:
        interaction.acting_for = choice
    elif choice:
        raise NotAllowedToAct("You cannot use this service for that person.")
    else:
        raise PageError("Choose who you are using this service for", "Select yourself or one of the people listed.")
    interaction.who_chosen = True
    interactions.save(interaction)
    return redirect(url_for("authorize.resume", interaction_id=interaction.id))
