"""One place that turns errors into responses: protocol JSON, an HTML page, or a 503.

The text shown to a client is kept apart from the detail written to the log.
"""

from __future__ import annotations

import logging

from authlib.oauth2 import OAuth2Error
from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import BadRequest, HTTPException

from idp.outbound import RETRY_AFTER_SECONDS, OutboundBusy
from idp.passkeys import PasskeyError
from idp.throttle import TooManyAttempts, wait_words
from keys.errors import NoSigningKeyError

log = logging.getLogger(__name__)

API_PREFIXES = ("/token", "/userinfo", "/introspect", "/revoke", "/register", "/jwks.json", "/.well-known/", "/ledger/")


class PageError(Exception):
    """An error shown to the browser on an error page; never a redirect (OIDC Core §3.1.2.6)."""

    def __init__(self, title: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.title, self.message, self.status = title, message, status


def wants_json() -> bool:
    if request.path.startswith(API_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _page(title: str, message: str, status: int) -> Response:
    html = render_template("errors/error.html", title=title, message=message)
    return Response(html, status=status, mimetype="text/html")


def handle_page_error(error: PageError) -> Response:
    return _page(error.title, error.message, error.status)


def handle_oauth_error(error: OAuth2Error) -> Response:
    status, body, headers = error()
    response = jsonify(dict(body))
    response.status_code = status
    for name, value in headers:
        if name.lower() != "content-type":
            response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def handle_passkey_error(error: PasskeyError) -> Response:
    """Passkey ceremonies are called by idp/static/passkeys.js: JSON ``{"error", "message"}``."""
    if request.is_json or wants_json():
        response = jsonify(error=error.error, message=error.message)
        response.status_code = error.status
        response.headers["Cache-Control"] = "no-store"
        return response
    return _page("There is a problem with your passkey", error.message, error.status)


def handle_too_many_attempts(error: TooManyAttempts) -> Response:
    """RFC 6585 §4: 429 with Retry-After (RFC 9110 §10.2.3); the same words for every address."""
    message = f"{error.reason} Wait {wait_words(error.wait)} and try again."
    if request.is_json or wants_json():
        response = jsonify(error="too_many_attempts", message=message)
        response.status_code = 429
    else:
        response = _page("Too many attempts", message, 429)
    response.headers["Retry-After"] = str(max(1, int(error.wait.total_seconds())))
    response.headers["Cache-Control"] = "no-store"
    return response


def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if wants_json():
        code = "invalid_request" if status < 500 else "server_error"
        response = jsonify(error=code, error_description=error.description)
        response.status_code = status
    else:
        response = _page(error.name, error.description or "", status)
    return _keep_headers(error, response)


def _keep_headers(error: HTTPException, response: Response) -> Response:
    """The exception's own headers survive the new body: ``Allow`` on a 405 (RFC 9110 §15.5.6
    MUST), ``Retry-After``, ``WWW-Authenticate``."""
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _unavailable(title: str, message: str, retry_after: int) -> Response:
    """A 503, as JSON for protocol requests or as a page, saying when to retry (RFC 9110 §10.2.3)."""
    if wants_json():
        response = jsonify(error="temporarily_unavailable", error_description=message)
        response.status_code = 503
    else:
        response = _page(title, message, 503)
    response.headers["Retry-After"] = str(retry_after)
    return response


def handle_database_unavailable(error: DBAPIError) -> Response:
    log.error("database unavailable: %s: %s", type(error.orig).__name__, str(error.orig)[:200])
    message = "The service is temporarily unavailable. Please try again in a few minutes."
    return _unavailable("Sorry, the service is unavailable", message, 5)


def handle_outbound_busy(error: OutboundBusy) -> Response:
    """idp/outbound.py: every outbound slot is taken; answer at once rather than wait for one."""
    log.warning("outbound request refused: %s", error)
    message = f"The service cannot make an outbound request just now: {error}. Please try again shortly."
    return _unavailable("Sorry, the service is busy", message, RETRY_AFTER_SECONDS)


def handle_missing_key(error: NoSigningKeyError) -> Response:
    """No signing or ledger key (a database never set up with ``idp db upgrade``): a 503 that says
    so, for every path that signs, never a 500."""
    log.error("signing keys unavailable: %s (run `idp db upgrade`, which creates them)", error)
    message = "The service cannot sign in or record consent at the moment. Please try again later."
    return _unavailable("Sorry, the service is unavailable", message, 30)


def handle_bad_data(error: DataError) -> Response:
    """Input the database itself refused (a safety net behind the validation in each view)."""
    log.warning("database refused request data: %s", type(error.orig).__name__)
    message = "The request contains a value that is not allowed."
    if wants_json():
        response = jsonify(error="invalid_request", error_description=message)
        response.status_code = 400
        return response
    return _page("There is a problem", message, 400)


def refuse_nul_characters() -> None:
    """NUL is never valid in any of our parameters, and PostgreSQL cannot store it: refuse it
    at the edge so SQLite and PostgreSQL deployments answer alike."""
    if any("\x00" in key or "\x00" in value for key, value in request.values.items(multi=True)):
        raise BadRequest("The request contains a NUL character.")
    if request.is_json and b"\\u0000" in request.get_data():
        raise BadRequest("The request contains a NUL character.")


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    message = "Something went wrong on our side. Please try again later."
    if wants_json():
        response = jsonify(error="server_error", error_description=message)
        response.status_code = 500
        return response
    return _page("Sorry, there is a problem with the service", message, 500)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(PageError, handle_page_error)
    app.register_error_handler(OAuth2Error, handle_oauth_error)
    app.register_error_handler(PasskeyError, handle_passkey_error)
    app.register_error_handler(TooManyAttempts, handle_too_many_attempts)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(OutboundBusy, handle_outbound_busy)
    app.register_error_handler(NoSigningKeyError, handle_missing_key)
    app.register_error_handler(DataError, handle_bad_data)
    app.before_request(refuse_nul_characters)
    app.register_error_handler(Exception, handle_unexpected)
