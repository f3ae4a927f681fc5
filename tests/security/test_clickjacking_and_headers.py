"""Threat: clickjacking, and the headers and cookie attributes sign-in.md asks of every response.

Mitigation: ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` on every page and endpoint, a
strict CSP without inline script, ``nosniff``, ``Referrer-Policy: no-referrer``, HSTS outside
loopback; every cookie ``HttpOnly`` and ``SameSite=Lax``, and ``Secure`` outside loopback.
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
