"""The authorization endpoint (OIDC Core §3.1.2) as a short pipeline of named steps.

``load_client`` → ``check_request`` → Authlib's grant validation → ``check_login`` →
``check_account_choice`` → ``needs_step_up`` → ``who_is_served`` (delegation.md "Act") →
``check_consent`` → issue the code. A bad client or redirect URI is shown on an error page and
never redirected to; every other error is redirected with ``error``, ``error_description``,
``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError, UnsupportedResponseTypeError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import Blueprint, current_app, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse  # what flask.redirect is typed to return

from consent.acting import ActingGrant
from consent.consents import find_consent, undecided_scopes
from consent.contact_details import email_problem
from idp import interactions
from idp.acting import parent_decides, scopes_to_ask_for
from idp.assurance import AcrRequest, requested_acr, satisfies
from idp.blueprints import acting
from idp.errors import PageError
from idp.interactions import Interaction
from idp.login_sessions import current_session
from idp.models import Client, LoginSession
from idp.oauth.claims import parse_claims_request, scopes_implied_by
from idp.oauth.server import query_client
from idp.passkeys import has_passkeys
from idp.services import db, services
from keys.errors import TokenVerificationError
from store.db import utcnow

bp = Blueprint("authorize", __name__)

PROMPTS = frozenset({"none", "login", "consent", "select_account"})
MAX_PARAM_LENGTH = 4096
MAX_NONCE_LENGTH = 500  # the column's size


class RequestNotSupportedError(OAuth2Error):
    error = "request_not_supported"  # OIDC Core §3.1.2.6


class RequestUriNotSupportedError(OAuth2Error):
    error = "request_uri_not_supported"


class UnmetAuthenticationRequirementsError(OAuth2Error):
    error = "unmet_authentication_requirements"  # OpenID Connect Core Error Code 1.0


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    duplicated = sorted(key for key in request.values if len(request.values.getlist(key)) > 1)
    params = {key: request.values[key] for key in request.values}
    return run(params, None, duplicated)


@bp.get("/authorize/resume/<interaction_id>")
def resume(interaction_id: str) -> ResponseReturnValue:
    interaction = interactions.load(interaction_id)
    if interaction is None:
        raise PageError("This sign-in has expired", "Go back to the service you were using and start again.")
    return run(interaction.params, interaction, [])


def run(params: dict[str, str], interaction: Interaction | None, duplicated: list[str]) -> BaseResponse:
    client, redirect_uri = load_client(params, duplicated)
    try:
        check_request(params, duplicated)
        oauth_request = build_oauth_request(params, client)
        grant = current_app.extensions["authlib"].get_consent_grant(oauth_request, end_user=None)
        login = current_session()
        prompts = set(params.get("prompt", "").split())
        if needs_login(login, prompts, params, interaction, client):
            return ask_to_sign_in(params, interaction, prompts)
        assert login is not None
        if "select_account" in prompts and not (interaction and interaction.account_chosen):
            return ask(params, interaction, "signin.choose_account")
        if needs_step_up(login, prompts, params, interaction, client):
            return ask_to_step_up(params, interaction)
        served = acting.who_is_served(login, prompts, requested_scope(oauth_request).split(), client, interaction)
        if served == acting.ASK:
            return ask(params, interaction, "acting.choose")
        if needs_consent(login, served, prompts, oauth_request, client, interaction):
            if "none" in prompts:
                raise ConsentRequiredError()
            return ask(params, interaction, "consent.decide")
        user = login.account if served is None else acting.act(client, served)
        response = current_app.extensions["authlib"].create_authorization_response(
            oauth_request, grant_user=user, grant=grant
        )
    except OAuth2Error as error:
        return error_redirect(redirect_uri, error, params.get("state"))
    interactions.finish(interaction)
    db().commit()
    return response  # type: ignore[no-any-return]


def load_client(params: dict[str, str], duplicated: list[str]) -> tuple[Client, str]:
    """Steps that must show an error page: the client and its redirect URI (RFC 6749 §4.1.2.1)."""
    if "client_id" in duplicated or "redirect_uri" in duplicated:
        raise PageError("There is a problem with the service", "The service sent an invalid sign-in request.")
    client = query_client(params.get("client_id"))
    if client is None:
        raise PageError("There is a problem with the service", "The service you came from is not registered.")
    redirect_uri = params.get("redirect_uri", "")
    if not client.check_redirect_uri(redirect_uri):
        raise PageError("There is a problem with the service", "The service sent an unregistered return address.")
    return client, redirect_uri


def check_request(params: dict[str, str], duplicated: list[str]) -> None:
    if duplicated:
        raise InvalidRequestError("A parameter is repeated.")  # RFC 6749 §3.1
    if any(len(value) > MAX_PARAM_LENGTH for value in params.values()):
        raise InvalidRequestError("A parameter is too long.")
    if len(params.get("nonce", "")) > MAX_NONCE_LENGTH:
        raise InvalidRequestError("The 'nonce' is too long.")
    if "request" in params:
        raise RequestNotSupportedError("Request objects are not supported.")
    if "request_uri" in params:
        raise RequestUriNotSupportedError("Request URIs are not supported.")
    if not params.get("response_type"):
        raise InvalidRequestError("Missing 'response_type'.")
    if params["response_type"] != "code":  # checked here: Authlib would echo the raw value
        raise UnsupportedResponseTypeError("other than code")
    if params.get("response_mode", "query") != "query":
        raise InvalidRequestError("Only response_mode=query is supported.")
    if "openid" not in params.get("scope", "").split():
        raise InvalidScopeError("The 'openid' scope is required.")
    check_prompt(params.get("prompt"))
    max_age(params)
    parse_claims_request(params.get("claims"))


def check_prompt(prompt: str | None) -> None:
    if prompt is None:
        return
    values = set(prompt.split())
    if not values or not values <= PROMPTS:
        raise InvalidRequestError("Unsupported 'prompt' value.")
    if "none" in values and len(values) > 1:
        raise InvalidRequestError("'prompt=none' cannot be combined with other values.")  # OIDC Core §3.1.2.1


def max_age(params: dict[str, str]) -> int | None:
    raw = params.get("max_age")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidRequestError("'max_age' must be a non-negative integer.")
    return int(raw)


def build_oauth_request(params: dict[str, str], client: Client) -> OAuth2Request:
    """An Authlib request over the (possibly stored) parameters; claims asked for by name widen
    the requested scope to the scope that covers them, so consent is asked for them too."""
    scope = params.get("scope", "").split()
    implied = client.get_allowed_scope(" ".join(sorted(scopes_implied_by(parse_claims_request(params.get("claims"))))))
    payload = dict(params, scope=" ".join(dict.fromkeys(scope + implied.split())))
    oauth_request = OAuth2Request("GET", services().settings.endpoint("/authorize"))
    oauth_request.payload = BasicOAuth2Payload(payload)
    return oauth_request


def requested_scope(oauth_request: OAuth2Request) -> str:
    """The scope of a request made by ``build_oauth_request``, which always sets its payload."""
    assert oauth_request.payload is not None
    return oauth_request.payload.scope


def needs_login(login: LoginSession | None, prompts: set[str], params: dict[str, str],
                interaction: Interaction | None, client: Client) -> bool:
    just_signed_in = interaction is not None and interaction.login_done
    hinted = hinted_subject(params, client)
    if login is None:
        return True
    if hinted is not None and hinted != client.subject_for(login.account_id):
        if just_signed_in or "none" in prompts:
            raise LoginRequiredError("The signed-in person is not the one the service expected.")
        return True
    if just_signed_in:
        return False
    if "login" in prompts:
        return True
    limit = max_age(params)
    return limit is not None and utcnow() - login.auth_time > dt.timedelta(seconds=limit)


def hinted_subject(params: dict[str, str], client: Client) -> str | None:
    """The ``sub`` of a previously issued ID token, even an expired one (OIDC Core §3.1.2.1)."""
    hint = params.get("id_token_hint")
    if not hint:
        return None
    settings = services().settings
    try:
        claims = services().keyring.verify_jwt(
            db(), hint, audience=client.client_id, issuer=settings.issuer, verify_exp=False
        )
    except TokenVerificationError:
        raise InvalidRequestError("Invalid 'id_token_hint'.") from None
    return str(claims.get("sub"))


def acr_request(params: dict[str, str], client: Client) -> AcrRequest | None:
    return requested_acr(params.get("acr_values"), parse_claims_request(params.get("claims")),
                         client.default_acr_values)


def needs_step_up(login: LoginSession, prompts: set[str], params: dict[str, str],
                  interaction: Interaction | None, client: Client) -> bool:
    """protocol.md "Assurance": a session below the level asked for is stepped up with a passkey.

    A voluntary request (``acr_values``, ``default_acr_values``) that cannot be met — no passkey,
    or the citizen chose not to use it — is answered with the session's own ``acr``; an essential
    ``acr`` claim request fails instead (OIDC Core §5.5.1.1). Using a passkey is authentication, so
    ``prompt=none`` answers ``login_required`` (OIDC Core §3.1.2.6).
    """
    wanted = acr_request(params, client)
    if wanted is None or satisfies(login.acr, wanted):
        return False
    declined = interaction is not None and interaction.step_up_declined
    if declined or wanted.minimum is None or not has_passkeys(db(), login.account_id):
        if wanted.essential:
            raise UnmetAuthenticationRequirementsError("The requested authentication level could not be met.")
        return False
    if "none" in prompts:
        raise LoginRequiredError("The citizen must use a passkey for the requested authentication level.")
    return True


def needs_consent(login: LoginSession, served: ActingGrant | None, prompts: set[str], oauth_request: OAuth2Request,
                  client: Client, interaction: Interaction | None) -> bool:
    """The citizen is asked for themselves; a parent acting for a child profile is asked for the
    child (``idp.acting.parent_decides``); any other delegate relies on the principal's own consent."""
    if client.statutory_basis:
        return False  # consent-ledger.md: held under a statutory basis; the disclosure is still logged
    requested = client.get_allowed_scope(requested_scope(oauth_request)).split()
    subject = login.account_id
    if served is not None:
        child = parent_decides(db(), served)
        if child is None:
            return False
        subject, requested = child.id, scopes_to_ask_for(db(), served, requested)
    undecided = undecided_scopes(find_consent(db(), subject, client.agency_id), requested)
    decided_now = interaction is not None and interaction.consent_done
    return bool(undecided) or ("consent" in prompts and not decided_now)


def ask_to_sign_in(params: dict[str, str], interaction: Interaction | None, prompts: set[str]) -> BaseResponse:
    if "none" in prompts:
        raise LoginRequiredError()
    interaction = interaction or interactions.start(params)
    interaction.login_done = False
    interactions.save(interaction)
    hint = params.get("login_hint", "")
    query: dict[str, Any] = {"interaction": interaction.id}
    if email_problem(hint) is None:  # OIDC Core §3.1.2.1: a hint we cannot use is ignored
        query["login_hint"] = hint
    return redirect(url_for("signin.signin", **query))


def ask_to_step_up(params: dict[str, str], interaction: Interaction | None) -> BaseResponse:
    interaction = interaction or interactions.start(params)
    return redirect(url_for("passkeys.confirm", interaction=interaction.id))


def ask(params: dict[str, str], interaction: Interaction | None, endpoint: str) -> BaseResponse:
    interaction = interaction or interactions.start(params)
    return redirect(url_for(endpoint, interaction_id=interaction.id))


def error_redirect(redirect_uri: str, error: OAuth2Error, state: str | None) -> BaseResponse:
    assert error.error is not None  # every OAuth2Error we raise or Authlib raises names its code
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    if state:
        params.append(("state", state))
    params.append(("iss", services().settings.issuer))
    return redirect(add_params_to_uri(redirect_uri, params))
