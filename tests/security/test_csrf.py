"""Threat: cross-site request forgery, on the relying party and on the provider.

Mitigation: ``state`` is echoed exactly (RFC 6749 §10.12, the RP's defence); every POST form of the
provider carries a CSRF token (sign-in.md "Abuse resistance"), and the passkey script's JSON calls
carry it in a header. Only the protocol endpoints, which authenticate the client and never read the
cookie, are exempt.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.models import Account
from idp.security import CSRF_EXEMPT_ENDPOINTS, HEADER_CSRF_ENDPOINTS
from tests.idp import flows
from tests.idp.flows import RegisteredClient

# Cookie-free by design: each authenticates the client (or carries a protocol request) instead.
PROTOCOL_ENDPOINTS = {"protocol.token", "protocol.revoke", "protocol.introspect", "protocol.userinfo",
                      "registration.register", "registration.manage", "authorize.authorize", "logout.end_session",
                      "ledger.entries"}
FORM_PAGES = ["/signin", "/signup", "/recover", "/account", "/account/password", "/account/delete",
              "/account/delegates/invite", "/account/acting-for/request", "/account/acting-for/child",
              "/account/delegates/stop-everyone"]
POST_FORM = re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", re.S | re.I)


def _post_routes(app: Flask, exempt: set[str]) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        if "POST" in (rule.methods or ()) and rule.endpoint not in exempt:
            paths.append(re.sub(r"<(?:int:)\w+>", "1", re.sub(r"<(?:string:)?\w+>", "x", rule.rule)))
    return sorted(paths)


@pytest.mark.parametrize("state", ["a", "with spaces & ampersands=", "ünïcödé", "x" * 200, "/?#[]@!$'()*+,;"])
def test_state_is_echoed_exactly(client: FlaskClient, rp: RegisteredClient, signed_in: Account, state: str) -> None:
    query = flows.authorize_params(rp, flows.pkce(), state=state)
    response = flows.follow_to_client(client, client.get("/authorize", query_string=query))
    assert flows.query(response.headers["Location"])["state"] == state


def test_only_the_protocol_endpoints_are_exempt_from_the_csrf_check() -> None:
    assert CSRF_EXEMPT_ENDPOINTS == PROTOCOL_ENDPOINTS


def test_every_form_post_without_the_token_is_refused(app: Flask, client: FlaskClient, signed_in: Account) -> None:
    paths = _post_routes(app, PROTOCOL_ENDPOINTS | HEADER_CSRF_ENDPOINTS)
    assert len(paths) > 20
    for path in paths:
        response = client.post(path, data={"decision": "allow", "email": signed_in.email})
        assert response.status_code == 400, path
        assert "Your session has expired" in response.get_data(as_text=True), path


def test_a_form_post_with_another_sessions_token_is_refused(app: Flask, client: FlaskClient,
                                                            signed_in: Account) -> None:
    stolen = flows.csrf_token(app.test_client())
    response = client.post("/signout", data={"csrf_token": stolen})
    assert response.status_code == 400


@pytest.mark.parametrize("endpoint", sorted(HEADER_CSRF_ENDPOINTS))
def test_passkey_script_calls_without_the_csrf_header_are_refused(app: Flask, client: FlaskClient,
                                                                  signed_in: Account, endpoint: str) -> None:
    path = next(rule.rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint)
    response = client.post(path, json={})
    assert response.status_code == 403 and response.get_json()["error"] == "invalid_csrf_token"


@pytest.mark.parametrize("path", FORM_PAGES)
def test_every_post_form_on_the_page_carries_a_csrf_token(client: FlaskClient, signed_in: Account, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200, path
    forms = POST_FORM.findall(page.get_data(as_text=True))
    assert forms, f"{path} has no POST form"
    assert all('name="csrf_token"' in form for form in forms), path
