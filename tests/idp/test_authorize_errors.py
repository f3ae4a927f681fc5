"""Authorization request errors: an error page for bad clients, a redirect for everything else."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from idp.models import Account
from tests.idp import flows
from tests.idp.flows import ISSUER, RegisteredClient


def _authorize(client: FlaskClient, rp: RegisteredClient, **params: str) -> tuple[int, dict[str, str]]:
    query = flows.authorize_params(rp, flows.pkce(), **params)
    response = client.get("/authorize", query_string=query)
    if response.status_code != 302:
        return response.status_code, {}
    location = response.headers["Location"]
    assert location.startswith(rp.redirect_uri), location
    result = flows.query(location)
    assert result.get("state") == query["state"]
    return 302, result


def test_unknown_client_gets_an_error_page_not_a_redirect(client: FlaskClient, rp: RegisteredClient) -> None:
    query = flows.authorize_params(rp, flows.pkce(), client_id="no-such-client")
    response = client.get("/authorize", query_string=query)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "not registered" in response.get_data(as_text=True)


@pytest.mark.parametrize("redirect_uri", ["https://evil.example/cb", "https://rp.example/cb/extra",
                                          "https://rp.example/cb?x=1", "https://RP.example/cb", ""])
def test_unregistered_redirect_uri_is_never_redirected_to(client: FlaskClient, rp: RegisteredClient,
                                                          redirect_uri: str) -> None:
    query = flows.authorize_params(rp, flows.pkce(), redirect_uri=redirect_uri)
    response = client.get("/authorize", query_string=query)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_duplicated_client_id_is_an_error_page(client: FlaskClient, rp: RegisteredClient) -> None:
    query = list(flows.authorize_params(rp, flows.pkce()).items()) + [("client_id", rp.client_id)]
    response = client.get("/authorize", query_string=query)
    assert response.status_code == 400 and "Location" not in response.headers


def test_duplicated_state_is_redirected_as_invalid_request(client: FlaskClient, rp: RegisteredClient) -> None:
    query = list(flows.authorize_params(rp, flows.pkce(), state="s1").items()) + [("state", "s2")]
    response = client.get("/authorize", query_string=query)
    assert response.status_code == 302
    assert flows.query(response.headers["Location"])["error"] == "invalid_request"


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", "code token"])
def test_implicit_and_hybrid_are_unsupported(client: FlaskClient, rp: RegisteredClient, response_type: str) -> None:
    status, result = _authorize(client, rp, response_type=response_type)
    assert status == 302
    assert result["error"] == "unsupported_response_type"
    assert result["iss"] == ISSUER


@pytest.mark.parametrize("overrides", [
    {"code_challenge": None, "code_challenge_method": None},
    {"code_challenge_method": None},
    {"code_challenge_method": "plain"},
    {"code_challenge": "too-short"},
])
def test_pkce_s256_is_required(client: FlaskClient, rp: RegisteredClient, overrides: dict[str, str]) -> None:
    status, result = _authorize(client, rp, **overrides)
    assert (status, result["error"]) == (302, "invalid_request")
    assert result["iss"] == ISSUER


@pytest.mark.parametrize(("overrides", "error"), [
    ({"scope": "profile email"}, "invalid_scope"),
    ({"response_type": ""}, "invalid_request"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "sideways"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"max_age": "soon"}, "invalid_request"),
    ({"claims": "{not json"}, "invalid_request"),
    ({"claims": '{"userinfo": []}'}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://rp.example/req"}, "request_uri_not_supported"),
    ({"id_token_hint": "not-a-jwt"}, "invalid_request"),
])
def test_malformed_requests_are_redirected_with_the_protocol_error(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, overrides: dict[str, str], error: str) -> None:
    status, result = _authorize(client, rp, **overrides)
    assert status == 302
    assert result["error"] == error
    assert result["iss"] == ISSUER


def test_prompt_none_without_a_session_answers_login_required(client: FlaskClient, rp: RegisteredClient) -> None:
    status, result = _authorize(client, rp, prompt="none")
    assert (status, result["error"]) == (302, "login_required")


def test_prompt_none_without_consent_answers_consent_required(client: FlaskClient, rp: RegisteredClient,
                                                             signed_in: Account) -> None:
    status, result = _authorize(client, rp, prompt="none")
    assert (status, result["error"]) == (302, "consent_required")


def test_denying_consent_returns_access_denied_with_state_and_iss(client: FlaskClient, rp: RegisteredClient,
                                                                  signed_in: Account) -> None:
    query = flows.authorize_params(rp, flows.pkce())
    response = flows.follow_to_client(client, client.get("/authorize", query_string=query), consent="deny")
    result = flows.query(response.headers["Location"])
    assert result["error"] == "access_denied"
    assert result["state"] == query["state"] and result["iss"] == ISSUER


def test_oversized_parameter_is_refused(client: FlaskClient, rp: RegisteredClient) -> None:
    status, result = _authorize(client, rp, nonce="n" * 5000)
    assert (status, result["error"]) == (302, "invalid_request")


def test_post_to_authorize_is_accepted(client: FlaskClient, rp: RegisteredClient) -> None:
    response = client.post("/authorize", data=flows.authorize_params(rp, flows.pkce()))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/signin?interaction=")
