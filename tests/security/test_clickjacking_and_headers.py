"""Threat: clickjacking, and the headers and cookie attributes sign-in.md asks of every response.

Mitigation: ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` on every page and endpoint, a
strict CSP without inline script, ``nosniff``, ``Referrer-Policy: no-referrer``, HSTS outside
loopback; every cookie ``HttpOnly`` and ``SameSite=Lax``, and ``Secure`` outside loopback.

Also: forms posting (or being redirected) off the service only to a registered redirect URI of a
pending request (CSP ``form-action``); no cache keeping a person's pages or tokens (``Cache-Control:
no-store`` unless a view declares a public document); ``__Host-`` cookies behind https.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.app import create_app
from idp.config import Settings
from idp.models import Account
from idp.services import Services
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _every_route(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<int:\w+>", "1", re.sub(r"<(?:string:)?\w+>", "x", rule.rule))
        path = path.replace("<path:filename>", "govuk-init.js")
        routes += [(method, path) for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return routes


def assert_security_headers(response: TestResponse, where: str) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, where
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") == "no-referrer", where


def assert_cookie_attributes(response: TestResponse, *, secure: bool) -> None:
    for cookie in response.headers.getlist("Set-Cookie"):
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie
        assert ("; Secure" in cookie) is secure, cookie


def test_every_route_answers_with_the_security_headers_signed_out(app: Flask, client: FlaskClient) -> None:
    for method, path in _every_route(app):
        with client.open(path, method=method) as response:  # static files stream: close them
            assert_security_headers(response, f"{method} {path}")


def test_every_route_answers_with_the_security_headers_signed_in(app: Flask, client: FlaskClient,
                                                                 signed_in: Account) -> None:
    for method, path in _every_route(app):
        if path not in {"/signout", "/logout", "/account/delete"}:  # keep the session for the next route
            with client.open(path, method=method) as response:
                assert_security_headers(response, f"{method} {path}")


def test_error_pages_and_protocol_errors_carry_them_too(client: FlaskClient) -> None:
    for response in (client.get("/no-such-page"), client.post("/token", data={}), client.get("/userinfo"),
                     client.post("/token", data={"code": "x" * 100_000}), client.delete("/healthz")):
        assert_security_headers(response, response.status)


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_every_405_names_the_allowed_methods(app: Flask, client: FlaskClient, accept: str) -> None:
    """RFC 9110 §15.5.6: a 405 MUST carry Allow, whether the error is a page or JSON."""
    checked = 0
    for rule in app.url_map.iter_rules():
        allowed = set(rule.methods or ()) - {"HEAD", "OPTIONS"}
        refused = next(method for method in ("DELETE", "PATCH", "PUT", "POST") if method not in allowed)
        path = re.sub(r"<int:\w+>", "1", re.sub(r"<(?:string:|path:)?\w+>", "x", rule.rule))
        response = client.open(path, method=refused, headers={"Accept": accept})
        if response.status_code != 405:  # another rule on the same path takes the method
            continue
        checked += 1
        named = {method.strip() for method in response.headers.get("Allow", "").split(",")}
        assert allowed <= named, f"{refused} {path}: Allow {response.headers.get('Allow')!r}"
    assert checked > 30


def test_a_post_to_a_route_that_takes_none_is_405_not_a_csrf_refusal(app: Flask, client: FlaskClient) -> None:
    """Routing answers before the CSRF check: a POST that no route takes changes nothing."""
    checked = 0
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<int:\w+>", "1", re.sub(r"<(?:string:|path:|secret:)?\w+>", "x", rule.rule))
        if "POST" in (rule.methods or ()) or any(
                "POST" in (other.methods or ()) for other in app.url_map.iter_rules() if other.rule == rule.rule):
            continue
        response = client.post(path)
        if response.status_code == 404:  # a converter refused "x" before the method was looked at
            continue
        checked += 1
        assert response.status_code == 405 and "GET" in response.headers.get("Allow", ""), path
    assert checked > 10


def test_every_cookie_of_a_whole_flow_is_httponly_and_samesite(client: FlaskClient, rp: RegisteredClient,
                                                               citizen: Account) -> None:
    query = flows.authorize_params(rp, flows.pkce())
    responses = [client.get("/authorize", query_string=query), client.get("/signin")]
    responses.append(flows.sign_in(client, citizen.email, CITIZEN_PASSWORD))
    responses.append(flows.follow_to_client(client, client.get("/authorize", query_string=query)))
    responses.append(client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")}))
    assert any(response.headers.getlist("Set-Cookie") for response in responses)
    for response in responses:
        assert_cookie_attributes(response, secure=False)  # loopback development issuer


@pytest.fixture
def https_client(settings: Settings, base_services: Services, app: Flask) -> FlaskClient:
    https = dataclasses.replace(settings, issuer="https://id.example.gov")
    services = dataclasses.replace(app.extensions["idp"], settings=https)
    return create_app(https, services=services).test_client()


def test_outside_loopback_cookies_are_secure_and_hsts_is_sent(https_client: FlaskClient, citizen: Account) -> None:
    page = https_client.get("/signin", base_url="https://id.example.gov")
    assert "max-age=" in page.headers["Strict-Transport-Security"]
    token = flows.CSRF.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    response = https_client.post("/signin", base_url="https://id.example.gov",
                                 data={"email": citizen.email, "password": CITIZEN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and response.headers.getlist("Set-Cookie")
    assert_cookie_attributes(page, secure=True)
    assert_cookie_attributes(response, secure=True)


# Public documents (no personal data, no tokens): the views declare their own caching.
PUBLIC_PATHS = ("/.well-known/", "/jwks.json", "/openapi.json", "/ledger/checkpoint", "/ledger/key", "/ledger/proof/",
                "/static/")


def test_nothing_personal_is_kept_by_any_cache(app: Flask, client: FlaskClient, signed_in: Account) -> None:
    """RFC 6749 §5.1 and RFC 9111 §5.2.2.5: every page and protocol answer is ``no-store`` unless public."""
    for method, path in _every_route(app):
        if path in {"/signout", "/logout", "/account/delete"}:
            continue
        with client.open(path, method=method) as response:
            cache_control = response.headers.get("Cache-Control", "")
            public = path.startswith(PUBLIC_PATHS) and response.status_code < 400
            assert "no-store" in cache_control or (public and cache_control), f"{method} {path}: {cache_control!r}"


def test_the_account_page_and_the_token_response_are_not_stored(client: FlaskClient, rp: RegisteredClient,
                                                                signed_in: Account) -> None:
    assert client.get("/account").headers["Cache-Control"] == "no-store"
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge)["code"]
    token = flows.exchange_code(client, rp, code, challenge.verifier)
    assert token.status_code == 200 and "no-store" in token.headers["Cache-Control"]


def _form_action(response: TestResponse) -> list[str]:
    directive = next(part.strip() for part in response.headers["Content-Security-Policy"].split(";")
                     if part.strip().startswith("form-action"))
    return directive.split()[1:]


def test_forms_post_only_to_the_service_when_no_sign_in_is_pending(client: FlaskClient) -> None:
    for path in ("/signin", "/signup", "/recover", "/"):
        assert _form_action(client.get(path)) == ["'self'"], path


def test_a_pending_sign_in_lets_its_forms_end_at_that_registered_redirect_uri_only(
        client: FlaskClient, rp: RegisteredClient, citizen: Account) -> None:
    """CSP3 ``form-action`` also governs the redirect after a form POST (Chromium enforces it):
    sign-in and consent end in a redirect to the client, so its origin, and no other, is allowed."""
    response = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce()))
    signin = client.get(response.headers["Location"])
    assert _form_action(signin) == ["'self'", "https://rp.example"]
    flows.follow_to_client(client, flows.sign_in(client, citizen.email, CITIZEN_PASSWORD,
                                                 interaction=flows.query(response.headers["Location"])["interaction"]))
    assert _form_action(client.get("/signin")) == ["'self'"]  # finished: nothing pending any more


def test_a_forged_flow_cookie_cannot_add_a_form_destination(client: FlaskClient) -> None:
    client.set_cookie("idp_flow", "eyJpbnRlcmFjdGlvbnMiOnt9fQ.forged.signature")
    assert _form_action(client.get("/signin")) == ["'self'"]


@pytest.mark.parametrize("uri, source", [("https://rp.example/cb?x=1", "https://rp.example"),
                                         ("http://127.0.0.1:8765/cb", "http://127.0.0.1:8765"),
                                         ("com.example.app:/cb", "com.example.app:"),
                                         ("javascript:alert(1)", None), ("https://a.example;script-src *", None),
                                         ("https:", None), ("", None)])
def test_only_a_plain_origin_or_app_scheme_becomes_a_form_destination(uri: str, source: str | None) -> None:
    from idp.security import _csp_source

    assert _csp_source(uri) == source


def test_behind_https_the_cookies_are_host_prefixed(https_client: FlaskClient, citizen: Account) -> None:
    """RFC 6265bis §4.1.3.2: ``__Host-`` cookies are Secure, ``Path=/`` and host-only, so no sibling
    host (``evil.example.gov``) can plant or overwrite them."""
    page = https_client.get("/signin", base_url="https://id.example.gov")
    token = flows.CSRF.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    response = https_client.post("/signin", base_url="https://id.example.gov",
                                 data={"email": citizen.email, "password": CITIZEN_PASSWORD, "csrf_token": token})
    cookies = page.headers.getlist("Set-Cookie") + response.headers.getlist("Set-Cookie")
    names = {cookie.split("=", 1)[0] for cookie in cookies}
    assert names == {"__Host-idp_flow", "__Host-idp_session"}, names
    for cookie in cookies:
        attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert "secure" in attributes and "path=/" in attributes, cookie
        assert not any(part.startswith("domain=") for part in attributes), cookie
