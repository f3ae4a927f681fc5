"""CSRF tokens for every form and the security headers every response carries (sign-in.md)."""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, g, request, session

from idp import interactions
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


def rotate_csrf_token() -> None:
    """The browser's identity changed (sign-in, sign-out): a token planted or read before no longer
    counts (session fixation, security.md); the next page gets a new one."""
    session.pop(CSRF_FIELD, None)


def check_csrf() -> None:
    # A POST no route takes is answered 404 or 405 (with Allow) by routing, changing nothing.
    if request.routing_exception is not None:
        return
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


_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action {form_action}; base-uri 'none'; object-src 'none'")
# A CSP source expression we build from a URI: scheme, or scheme://host[:port] (CSP3 §2.3.1).
_SOURCE = re.compile(r"[a-z][a-z0-9+.-]*:(//[a-z0-9.-]+(:[0-9]{1,5})?|//\[[0-9a-f:.]+\](:[0-9]{1,5})?)?")


def content_security_policy(form_destinations: Iterable[str] = ()) -> str:
    return _CSP.format(form_action=" ".join(["'self'", *sorted(set(form_destinations))]))


SECURITY_HEADERS = (
    ("Content-Security-Policy", content_security_policy()),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
# RFC 6749 §5.1, RFC 9111 §5.2.2.5: nothing is stored by any cache unless the view says it is public.
NO_STORE = ("Cache-Control", "no-store")


def security_headers(issuer: str) -> tuple[tuple[str, str], ...]:
    """Every response's security headers; HSTS outside loopback development."""
    return SECURITY_HEADERS + ((HSTS,) if issuer.startswith("https:") else ())


def allow_form_action(uri: str | None) -> None:
    """This page's form may end in a redirect to ``uri`` (a registered URI): CSP ``form-action``
    governs the redirects after a form submission too (CSP3 §6.4.1; Chromium enforces it)."""
    if uri:
        g.setdefault("form_actions", []).append(uri)


def form_destinations() -> set[str]:
    """'self', plus the origins this page's forms may be redirected to: the registered redirect URIs
    of the authorization requests pending in this browser (sign-in, consent, ... end there: RFC 6749
    §4.1.2) and any the view allowed. Never a wildcard."""
    uris = [*g.get("form_actions", []), *interactions.pending_redirect_uris()]
    return {source for uri in uris if (source := _csp_source(uri))}


def _csp_source(uri: str) -> str | None:
    parts = urlsplit(uri.lower())
    if parts.scheme in {"http", "https"}:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        source = f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
    else:
        source = f"{parts.scheme}:"  # a native app's private-use scheme (RFC 8252 §7.1)
    return source if _SOURCE.fullmatch(source) and source not in _NEVER_SOURCES else None


_NEVER_SOURCES = frozenset({"http:", "https:", "javascript:", "data:", "blob:", "filesystem:"})


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    present = {name.lower() for name in headers.keys()}  # a view may set its own, stricter value
    wanted = security_headers(services().settings.issuer) + (NO_STORE,)
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)
    if response.mimetype == "text/html" and "content-security-policy" not in present:
        headers["Content-Security-Policy"] = content_security_policy(form_destinations())
    return response


def init_security(app: Flask) -> None:
    app.before_request(check_csrf)
    app.after_request(add_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
