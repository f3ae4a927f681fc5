"""The authorization code flow end to end through the test client (OIDC Core §3.1)."""

from __future__ import annotations

from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.models import Account
from tests.idp import flows
from tests.idp.flows import ISSUER, RegisteredClient


def _verify_id_token(client: FlaskClient, id_token: str) -> dict:
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return dict(jwt.decode(id_token, keys).claims)


def test_signed_in_citizen_gets_code_with_state_and_iss(client: FlaskClient, rp: RegisteredClient,
                                                        signed_in: Account) -> None:
    result = flows.get_code(client, rp, flows.pkce())
    assert result["code"]
    assert result["iss"] == ISSUER


def test_code_exchange_returns_tokens_with_no_store(client: FlaskClient, rp: RegisteredClient,
                                                    signed_in: Account) -> None:
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge)["code"]
    response = flows.exchange_code(client, rp, code, challenge.verifier)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert {"access_token", "id_token", "expires_in", "scope"} <= set(body)


def test_id_token_carries_the_required_claims(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    body = flows.tokens_for(client, rp)
    claims = _verify_id_token(client, body["id_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == rp.client_id
    assert claims["nonce"] == body["nonce"]
    assert {"sub", "exp", "iat", "auth_time", "acr", "amr", "sid", "at_hash"} <= set(claims)
    assert claims["acr"] == "Cl" and claims["amr"] == ["pwd"]


def test_userinfo_returns_consented_claims(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    body = flows.tokens_for(client, rp)
    response = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert response.status_code == 200, response.get_json()
    info = response.get_json()
    assert info["email"] == signed_in.email
    assert info["given_name"] == "Ada"
    assert "phone_number" not in info
