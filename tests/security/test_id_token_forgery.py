"""Threat: ID (and access) token forgery by algorithm confusion (RFC 8725 §2.1, §3.1).

Mitigation: only the configured asymmetric algorithms are used and accepted; ``alg: none`` and an
HMAC keyed with one of our public keys are impossible. A forged token is tried where the provider
itself consumes its tokens: the access token at userinfo, the ID token as ``id_token_hint``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient

from idp.models import Account
from tests.idp import flows
from tests.idp.flows import RegisteredClient

ASYMMETRIC = {"ES256", "RS256", "PS256", "EdDSA"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def _with_header(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _rsa_public_pem(client: FlaskClient) -> tuple[str, bytes]:
    jwk = next(key for key in client.get("/jwks.json").get_json()["keys"] if key["kty"] == "RSA")
    public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
    return jwk["kid"], public.public_bytes(serialization.Encoding.PEM,  # type: ignore[union-attr]
                                           serialization.PublicFormat.SubjectPublicKeyInfo)


def forged_none(token: str) -> str:
    header = jwt.get_unverified_header(token) | {"alg": "none"}
    return _with_header(header, _payload(token)) + "."


def forged_hs256(client: FlaskClient, token: str) -> str:
    kid, pem = _rsa_public_pem(client)
    signing_input = _with_header(jwt.get_unverified_header(token) | {"alg": "HS256", "kid": kid}, _payload(token))
    return f"{signing_input}.{_b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


def _userinfo(client: FlaskClient, token: str) -> int:
    return client.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code


def test_discovery_and_jwks_offer_only_asymmetric_algorithms(client: FlaskClient) -> None:
    metadata = client.get("/.well-known/openid-configuration").get_json()
    for field in ("id_token_signing_alg_values_supported", "token_endpoint_auth_signing_alg_values_supported"):
        assert set(metadata[field]) <= ASYMMETRIC, field
    keys = client.get("/jwks.json").get_json()["keys"]
    assert all(key["kty"] in {"EC", "RSA", "OKP"} and "d" not in key for key in keys)


def test_issued_tokens_are_signed_with_an_asymmetric_algorithm(client: FlaskClient, rp: RegisteredClient,
                                                               signed_in: Account) -> None:
    tokens = flows.tokens_for(client, rp)
    assert jwt.get_unverified_header(tokens["id_token"])["alg"] in ASYMMETRIC
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] in ASYMMETRIC


@pytest.mark.parametrize("forge", ["none", "hs256"])
def test_a_forged_access_token_carrying_a_live_tokens_claims_is_refused(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, forge: str) -> None:
    genuine = flows.tokens_for(client, rp)["access_token"]
    assert _userinfo(client, genuine) == 200
    forged = forged_none(genuine) if forge == "none" else forged_hs256(client, genuine)
    assert _userinfo(client, forged) == 401


@pytest.mark.parametrize("forge", ["none", "hs256"])
def test_a_forged_id_token_hint_is_not_trusted(client: FlaskClient, rp: RegisteredClient, signed_in: Account,
                                               forge: str) -> None:
    genuine = flows.tokens_for(client, rp)["id_token"]
    forged = forged_none(genuine) if forge == "none" else forged_hs256(client, genuine)
    query = flows.authorize_params(rp, flows.pkce(), prompt="none", id_token_hint=forged)
    response = client.get("/authorize", query_string=query)
    assert response.status_code in (302, 400)
    assert "code" not in flows.query(response.headers.get("Location", ""))


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512"])
def test_a_client_cannot_register_for_a_symmetric_or_unsigned_id_token(client: FlaskClient, alg: str,
                                                                       agency_token: str) -> None:
    body = {"client_name": "Forger", "redirect_uris": ["https://rp.example/cb"],
            "token_endpoint_auth_method": "client_secret_basic", "id_token_signed_response_alg": alg}
    response = client.post("/register", json=body, headers={"Authorization": f"Bearer {agency_token}"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_client_metadata"
