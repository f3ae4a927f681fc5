"""Threat: authorization code interception and injection (RFC 9700 §4.5, RFC 7636).

Mitigation: PKCE S256 required; the code is bound to its client, redirect URI and verifier; it is
single use, and a replayed code revokes the tokens issued from it. Only a successful redemption
consumes it, so whoever intercepts a code cannot cancel the sign-in by presenting it with a wrong
verifier (RFC 6749 §10.5, RFC 7636 §4.6); but at most MAX_REDEMPTION_ATTEMPTS verifiers are
checked against a code (the PostgreSQL races are in test_code_redemption_races.py).
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.models import Account
from idp.oauth.grants import MAX_REDEMPTION_ATTEMPTS
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _code(client: FlaskClient, rp: RegisteredClient) -> tuple[str, flows.Pkce]:
    challenge = flows.pkce()
    return flows.get_code(client, rp, challenge)["code"], challenge


def _error(response: TestResponse) -> str:
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    return str(response.get_json()["error"])


@pytest.mark.parametrize("overrides", [{"code_challenge": None, "code_challenge_method": None},
                                       {"code_challenge_method": "plain"},
                                       {"code_challenge_method": None}])
def test_an_authorization_request_without_pkce_s256_gets_no_code(client: FlaskClient, rp: RegisteredClient,
                                                                 signed_in: Account, overrides: dict) -> None:
    query = flows.authorize_params(rp, flows.pkce(), **overrides)
    response = flows.follow_to_client(client, client.get("/authorize", query_string=query))
    result = flows.query(response.headers.get("Location", ""))
    assert "code" not in result and result.get("error") == "invalid_request"


def test_an_intercepted_code_is_useless_without_the_verifier(client: FlaskClient, rp: RegisteredClient,
                                                             signed_in: Account) -> None:
    code, _challenge = _code(client, rp)
    assert _error(flows.exchange_code(client, rp, code, flows.pkce().verifier)) == "invalid_grant"
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri}
    assert _error(client.post("/token", **flows.authenticated(rp, data))) in {"invalid_grant", "invalid_request"}


def test_a_code_injected_into_another_client_is_refused(client: FlaskClient, rp: RegisteredClient,
                                                        secret_rp: RegisteredClient, signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
            "code_verifier": challenge.verifier}
    assert _error(client.post("/token", **flows.authenticated(secret_rp, data))) == "invalid_grant"


def test_a_code_is_bound_to_its_redirect_uri(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://rp.example/other",
            "code_verifier": challenge.verifier}
    assert _error(client.post("/token", **flows.authenticated(rp, data))) == "invalid_grant"


def test_a_replayed_code_is_refused_and_revokes_the_tokens_issued_from_it(client: FlaskClient, rp: RegisteredClient,
                                                                          signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    first = flows.exchange_code(client, rp, code, challenge.verifier)
    assert first.status_code == 200
    assert _error(flows.exchange_code(client, rp, code, challenge.verifier)) == "invalid_grant"
    bearer = {"Authorization": f"Bearer {first.get_json()['access_token']}"}
    assert client.get("/userinfo", headers=bearer).status_code == 401


def test_an_intercepted_code_tried_with_wrong_verifiers_still_works_for_its_client(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    for _ in range(MAX_REDEMPTION_ATTEMPTS - 1):
        assert _error(flows.exchange_code(client, rp, code, flows.pkce().verifier)) == "invalid_grant"
    assert flows.exchange_code(client, rp, code, challenge.verifier).status_code == 200


def test_a_code_is_burned_once_its_attempts_are_spent(client: FlaskClient, rp: RegisteredClient,
                                                      signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    for _ in range(MAX_REDEMPTION_ATTEMPTS):
        assert _error(flows.exchange_code(client, rp, code, flows.pkce().verifier)) == "invalid_grant"
    refused = flows.exchange_code(client, rp, code, challenge.verifier)
    assert _error(refused) == "invalid_grant" and "code" in refused.get_json()["error_description"]


def test_a_code_redeemed_after_failed_attempts_still_revokes_its_tokens_when_replayed(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    assert _error(flows.exchange_code(client, rp, code, flows.pkce().verifier)) == "invalid_grant"
    first = flows.exchange_code(client, rp, code, challenge.verifier)
    assert first.status_code == 200
    assert _error(flows.exchange_code(client, rp, code, challenge.verifier)) == "invalid_grant"
    bearer = {"Authorization": f"Bearer {first.get_json()['access_token']}"}
    assert client.get("/userinfo", headers=bearer).status_code == 401
