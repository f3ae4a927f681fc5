"""Threat: replay of a ``private_key_jwt`` client assertion (RFC 7523 §3, RFC 9700 §2.5).

Mitigation: ``jti`` is single use within the assertion's lifetime; ``aud``, ``exp`` and
``iss``/``sub`` are checked.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.models import Account
from tests.idp import flows
from tests.idp.flows import RegisteredClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _introspect_with(client: FlaskClient, assertion: str) -> tuple[int, dict[str, Any]]:
    """Introspection authenticates the client like the token endpoint, without needing a code."""
    response = client.post("/introspect", data={"token": "x", "client_assertion_type": ASSERTION_TYPE,
                                                "client_assertion": assertion})
    return response.status_code, response.get_json()


def test_an_assertion_is_accepted_once_and_refused_when_replayed(client: FlaskClient, rp: RegisteredClient) -> None:
    assertion = flows.client_assertion(rp, aud=f"{flows.ISSUER}/introspect")
    assert _introspect_with(client, assertion)[0] == 200
    status, body = _introspect_with(client, assertion)
    assert status in (400, 401) and body["error"] == "invalid_client"


def test_a_replay_at_another_endpoint_is_refused_too(client: FlaskClient, rp: RegisteredClient,
                                                     signed_in: Account) -> None:
    assertion = flows.client_assertion(rp, aud=flows.ISSUER)
    assert _introspect_with(client, assertion)[0] == 200
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge)["code"]
    response = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                           "redirect_uri": rp.redirect_uri, "code_verifier": challenge.verifier,
                                           "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
    assert response.status_code in (400, 401) and response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("overrides", [
    {"aud": "https://elsewhere.example/token"},
    {"exp": int(time.time()) - 120},
    {"iss": "someone-else"},
    {"sub": "someone-else"},
    {"jti": ""},
])
def test_an_assertion_with_a_bad_claim_is_refused(client: FlaskClient, rp: RegisteredClient, overrides: dict) -> None:
    status, body = _introspect_with(client, flows.client_assertion(rp, **overrides))
    assert status in (400, 401) and body["error"] == "invalid_client"


def test_a_client_id_beside_the_assertion_must_name_the_assertions_client(
        client: FlaskClient, rp: RegisteredClient, secret_rp: RegisteredClient, signed_in: Account) -> None:
    """RFC 7521 §4.2: a client_id parameter, if present, MUST identify the assertion's client."""
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge)["code"]
    request = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
               "code_verifier": challenge.verifier, "client_assertion_type": ASSERTION_TYPE}
    def redeem(named: str) -> TestResponse:
        assertion = flows.client_assertion(rp)
        return client.post("/token", data=request | {"client_id": named, "client_assertion": assertion})

    for named in (secret_rp.client_id, "someone-else"):
        refused = redeem(named)
        assert refused.status_code in (400, 401) and refused.get_json()["error"] == "invalid_client", named
    same = redeem(rp.client_id)
    assert same.status_code == 200, same.get_json()  # the refusals did not use up the code
