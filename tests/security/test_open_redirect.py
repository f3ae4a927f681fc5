"""Threat: open redirect via ``redirect_uri`` (RFC 9700 §4.1, OIDC Core §3.1.2.6).

Mitigation: exact match against the registered URIs; a client or redirect error is shown on an
error page, never redirected.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from idp.models import Account
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
