"""OIDC Discovery 1.0 / RFC 8414 metadata and the JWKS (RFC 7517)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.idp.flows import ISSUER


def test_both_discovery_documents_describe_the_same_provider(client: FlaskClient) -> None:
    oidc = client.get("/.well-known/openid-configuration")
    oauth = client.get("/.well-known/oauth-authorization-server")
    assert oidc.status_code == oauth.status_code == 200
    assert oidc.get_json() == oauth.get_json()
    assert oidc.get_json()["issuer"] == ISSUER


def test_discovery_advertises_the_profile(client: FlaskClient) -> None:
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert "pairwise" in meta["subject_types_supported"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "private_key_jwt", "client_secret_basic", "client_secret_post", "none"}
    assert "none" not in meta["id_token_signing_alg_values_supported"]


def test_every_advertised_endpoint_is_served(client: FlaskClient) -> None:
    meta = client.get("/.well-known/openid-configuration").get_json()
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "revocation_endpoint", "introspection_endpoint", "end_session_endpoint"):
        path = meta[name].removeprefix(ISSUER)
        assert client.options(path).status_code != 404, name


def test_discovery_is_cacheable_and_answers_conditional_requests(client: FlaskClient) -> None:
    first = client.get("/.well-known/openid-configuration")
    assert "max-age" in first.headers["Cache-Control"]
    etag = first.headers["ETag"]
    again = client.get("/.well-known/openid-configuration", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_jwks_publishes_public_keys_only_with_thumbprint_kids(client: FlaskClient) -> None:
    response = client.get("/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["Cache-Control"]
    keys = response.get_json()["keys"]
    assert {key["alg"] for key in keys} >= {"ES256", "RS256", "PS256", "EdDSA"}
    assert all("d" not in key and key["kid"] for key in keys)
