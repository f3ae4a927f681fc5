"""CSRF tokens for every form and the security headers every response carries (sign-in.md)."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, Response, request, session

from idp.errors import PageError
from idp.services import services

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# Protocol endpoints authenticate the client instead; they never read cookies.
CSRF_EXEMPT_ENDPOINTS = frozenset(
    {"protocol.token", "protocol.revoke", "protocol.introspect", "protocol.userinfo", "registration.register",
     "registration.manage", "authorize.authorize", "logout.end_session", "ledger.entries"}
)


# JSON endpoints called by idp/static/passkeys.js: no form body carries the token, so it comes in
# the X-CSRF-Token header instead, checked by the passkeys blueprint before it does anything.
HEADER_CSRF_ENDPOINTS = frozenset(
    {"passkeys.register_options", "passkeys.register_verify", "passkeys.signin_options",
     "passkeys.signin_verify", "passkeys.confirm_options", "passkeys.confirm_verify"}
)


def csrf_token() -> str:
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(session[CSRF_FIELD])


def check_csrf() -> None:
    if request.method != "POST" or request.endpoint in CSRF_EXEMPT_ENDPOINTS | HEADER_CSRF_ENDPOINTS:
        return
    check_form_csrf()


def check_form_csrf() -> None:
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(str(expected).encode(), given.encode()):
        raise PageError("Your session has expired", "Go back, reload the page and try again.", 400)


def csrf_header_valid() -> bool:
    """The header form of the double-submit check, for script requests (see HEADER_CSRF_ENDPOINTS)."""
    expected = session.get(CSRF_FIELD)
    given = request.headers.get(CSRF_HEADER, "")
    return bool(expected) and hmac.compare_digest(str(expected).encode(), given.encode())


SECURITY_HEADERS = (
    ("Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "frame-ancestors 'none'; form-action 'self' http: https:; base-uri 'none'; object-src 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def security_headers(issuer: str) -> tuple[tuple[str, str], ...]:
    """Every response's security headers; HSTS outside loopback development."""
    return SECURITY_HEADERS + ((HSTS,) if issuer.startswith("https:") else ())


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    present = {name.lower() for name in headers.keys()}  # a view may set its own, stricter value
    for name, value in security_headers(services().settings.issuer):
        if name.lower() not in present:
            headers.add(name, value)
    return response


def init_security(app: Flask) -> None:
    app.before_request(check_csrf)
    app.after_request(add_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
