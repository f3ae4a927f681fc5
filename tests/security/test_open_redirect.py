"""Threat: open redirect via ``redirect_uri`` (RFC 9700 §4.1, OIDC Core §3.1.2.6).

Mitigation: exact match against the registered URIs, except that a native (public) client's
loopback IP redirect URI matches on any port and nothing else (RFC 8252 §7.3, idp.redirect_uris);
a client or redirect error is shown on an error page, never redirected.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from idp.models import Account, Agency
from tests.conftest import make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient

NEAR_MISSES = ["https://evil.example/cb", "https://rp.example/cb/", "https://rp.example/cb/../evil",
               "https://rp.example/cb?next=https://evil.example", "https://rp.example/cb#x", "https://RP.EXAMPLE/cb",
               "http://rp.example/cb", "https://rp.example:443/cb", "https://rp.example/cb@evil.example",
               "https://rp.example.evil.example/cb", "//evil.example/cb", "https://rp.example/CB", ""]


def _authorize(client: FlaskClient, rp: RegisteredClient, **params: str) -> TestResponse:
    return client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce(), **params))


@pytest.mark.parametrize("redirect_uri", NEAR_MISSES)
def test_a_redirect_uri_that_is_not_exactly_registered_gets_an_error_page(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, redirect_uri: str) -> None:
    response = _authorize(client, rp, redirect_uri=redirect_uri)
    assert response.status_code == 400 and "Location" not in response.headers


def test_an_unknown_client_is_never_redirected(client: FlaskClient, rp: RegisteredClient) -> None:
    response = _authorize(client, rp, client_id="no-such-client", redirect_uri="https://evil.example/cb")
    assert response.status_code == 400 and "Location" not in response.headers


def test_a_bad_request_with_another_clients_redirect_uri_is_not_redirected(
        client: FlaskClient, rp: RegisteredClient, public_rp: RegisteredClient) -> None:
    response = _authorize(client, rp, redirect_uri=public_rp.redirect_uri, response_type="token")
    assert response.status_code == 400 and "Location" not in response.headers


def test_the_exactly_registered_uri_is_redirected_to(client: FlaskClient, rp: RegisteredClient,
                                                     signed_in: Account) -> None:
    response = flows.follow_to_client(client, _authorize(client, rp))
    assert response.headers["Location"].startswith(rp.redirect_uri + "?")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.text(max_size=20), prefix=st.sampled_from(["", "https://rp.example", "https://rp.example/cb"]))
def test_no_generated_redirect_uri_but_the_registered_one_is_ever_redirected_to(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, prefix: str, suffix: str) -> None:
    redirect_uri = prefix + suffix
    response = _authorize(client, rp, redirect_uri=redirect_uri, response_type="bogus")
    assert response.status_code < 500
    if response.status_code in (301, 302, 303, 307, 308):
        assert redirect_uri == rp.redirect_uri
        assert response.headers["Location"].startswith(rp.redirect_uri + "?")


# --- RFC 8252 §7.3: a native app's loopback redirect URI matches on any port, and on nothing else ---

@pytest.fixture
def native_app(db_session: Session, agency: Agency) -> RegisteredClient:
    return make_client(db_session, agency, method="none", client_name="Native App",
                       redirect_uris=["http://127.0.0.1/cb", "http://[::1]/cb", "http://localhost/cb"])


@pytest.mark.parametrize(("redirect_uri", "other_port"), [("http://127.0.0.1:51234/cb", "http://127.0.0.1:51235/cb"),
                                                         ("http://[::1]:8080/cb", "http://[::1]/cb"),
                                                         ("http://127.0.0.1/cb", "http://127.0.0.1:80/cb")])
def test_a_native_apps_loopback_redirect_uri_matches_any_port(client: FlaskClient, native_app: RegisteredClient,
                                                              signed_in: Account, redirect_uri: str,
                                                              other_port: str) -> None:
    challenge = flows.pkce()
    params = flows.authorize_params(native_app, challenge, redirect_uri=redirect_uri)
    response = flows.follow_to_client(client, client.get("/authorize", query_string=params))
    assert response.status_code == 302 and response.headers["Location"].startswith(redirect_uri + "?")
    code = flows.query(response.headers["Location"])["code"]
    token = {"grant_type": "authorization_code", "code": code, "code_verifier": challenge.verifier}
    def redeem(uri: str) -> int:
        return client.post("/token", **flows.authenticated(native_app, token | {"redirect_uri": uri})).status_code

    assert redeem(other_port) == 400  # RFC 6749 §4.1.3: the token request repeats the URI exactly
    assert redeem(redirect_uri) == 200


LOOPBACK_NEAR_MISSES = ["http://127.0.0.1:5000/other", "http://127.0.0.1:5000/cb?x=1", "http://127.0.0.1:5000/cb#x",
                        "https://127.0.0.1:5000/cb", "http://127.0.0.1:5000@evil.example/cb",
                        "http://127.0.0.2:5000/cb",
                        "http://127.0.0.1:0/cb", "http://127.0.0.1:70000/cb", "http://[::1/cb",
                        "http://localhost:5000/cb"]  # RFC 8252 §8.3: localhost is matched exactly


@pytest.mark.parametrize("redirect_uri", LOOPBACK_NEAR_MISSES)
def test_only_the_port_of_a_loopback_redirect_uri_may_vary(client: FlaskClient, native_app: RegisteredClient,
                                                           signed_in: Account, redirect_uri: str) -> None:
    response = _authorize(client, native_app, redirect_uri=redirect_uri)
    assert response.status_code == 400 and "Location" not in response.headers


def test_a_confidential_clients_loopback_redirect_uri_is_matched_exactly(
        client: FlaskClient, db_session: Session, agency: Agency, signed_in: Account) -> None:
    web = make_client(db_session, agency, method="client_secret_basic", redirect_uris=["http://127.0.0.1/cb"])
    response = _authorize(client, web, redirect_uri="http://127.0.0.1:5000/cb")
    assert response.status_code == 400 and "Location" not in response.headers
