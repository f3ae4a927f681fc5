"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) using Authlib's endpoint.

The citizen is signed out without being asked only when ``id_token_hint`` is an ID token this
service issued to the person signed in in this browser (§2); any other request is confirmed
first, with a POST carrying the CSRF token (§6), so no other site can sign anyone out.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from authlib.oidc.rpinitiated import EndSessionRequest
from flask import Blueprint, Response, current_app, render_template, request

from idp.login_sessions import current_session, end_current_session
from idp.oauth.server import query_client
from idp.security import allow_form_action, check_form_csrf
from idp.services import db, services
from keys.errors import TokenVerificationError

bp = Blueprint("logout", __name__)


class EndSessionEndpoint(_EndSessionEndpoint):
    def _validate_id_token_hint(self, id_token_hint: str) -> dict[str, Any]:
        """§2: the hint must be an ID token we issued: our key and ``iss``, untyped (so never an
        access token, ``at+jwt``, nor a logout token, ``logout+jwt``: RFC 8725 §3.11), and for one
        of our clients. Its ``exp`` is not checked: §2 accepts expired ID tokens as hints."""
        settings = services().settings
        try:
            claims = services().keyring.verify_jwt(db(), id_token_hint, audience=None, issuer=settings.issuer,
                                                    verify_exp=False)
        except TokenVerificationError:
            raise InvalidRequestError("Invalid 'id_token_hint'.") from None
        audience = claims.get("aud")
        if not isinstance(audience, str) or query_client(audience) is None or not isinstance(claims.get("sub"), str):
            raise InvalidRequestError("The 'id_token_hint' is not an ID token of this service.")
        return claims

    def end_session(self, end_session_request: Any) -> None:
        end_current_session()
        db().commit()


def hint_names_the_signed_in_person(validated: EndSessionRequest) -> bool:
    """§2: the hint's subject, as its client sees it (pairwise per agency), is whoever is signed in
    here; when acting for someone (RFC 8693 §4.1) the ID token's current actor is that person."""
    login = current_session()
    claims, client = validated.id_token_claims, validated.client
    if login is None:
        return True  # no session to end: nothing anyone could be tricked out of
    if claims is None or client is None:
        return False
    actor = claims.get("act")
    signed_in = actor.get("sub") if isinstance(actor, dict) else claims.get("sub")
    return bool(signed_in == client.subject_for(login.account_id))


@bp.route("/logout", methods=["GET", "POST"])
def end_session() -> Response | str:
    server = current_app.extensions["authlib"]
    try:
        validated = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        # RP-Initiated Logout §4: on errors, never redirect.
        return Response(render_template("signin/signout_error.html", message=error.description), status=400)
    confirmed = request.method == "POST" and request.form.get("decision") == "signout"
    if not confirmed and (validated.needs_confirmation or not hint_names_the_signed_in_person(validated)):
        # §6: ask before acting (the answer is checked by CSRF on the POST); §3: the registered
        # post-logout URI it then redirects to is a form destination of this page.
        allow_form_action(validated.redirect_uri)
        return render_template("signin/logout_confirm.html", params=request.values)
    if confirmed:
        check_form_csrf()
    response = server.create_endpoint_response("end_session", validated)
    return response if response is not None else render_template("signin/signed_out.html")
