"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) using Authlib's endpoint."""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from flask import Blueprint, Response, current_app, render_template, request

from idp.login_sessions import end_current_session
from idp.security import check_form_csrf
from idp.services import db, services

bp = Blueprint("logout", __name__)


class EndSessionEndpoint(_EndSessionEndpoint):
    def get_server_jwks(self) -> dict[str, Any]:
        return services().keyring.jwks(db())

    def end_session(self, end_session_request: Any) -> None:
        end_current_session()
        db().commit()


@bp.route("/logout", methods=["GET", "POST"])
def end_session() -> Response | str:
    server = current_app.extensions["authlib"]
    try:
        validated = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        # RP-Initiated Logout §4: on errors, never redirect.
        return Response(render_template("signin/signout_error.html", message=error.description), status=400)
    confirmed = request.method == "POST" and request.form.get("decision") == "signout"
    if validated.needs_confirmation and not confirmed:
        # §6: without a valid id_token_hint, ask before acting (checked by CSRF on the POST).
        return render_template("signin/logout_confirm.html", params=request.values)
    if confirmed:
        check_form_csrf()
    response = server.create_endpoint_response("end_session", validated)
    return response if response is not None else render_template("signin/signed_out.html")
