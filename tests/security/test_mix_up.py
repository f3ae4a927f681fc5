"""Threat: mix-up attacks (RFC 9700 §4.4). Mitigation: ``iss`` in every authorization response
(RFC 9207), successful or not, equal to the issuer in discovery."""

from __future__ import annotations

from flask.testing import FlaskClient

from idp.models import Account
from tests.idp import flows
from tests.idp.flows import ISSUER, RegisteredClient


def test_the_issuer_is_named_in_a_successful_authorization_response(client: FlaskClient, rp: RegisteredClient,
                                                                   signed_in: Account) -> None:
    result = flows.get_code(client, rp, flows.pkce())
    assert result["iss"] == ISSUER == client.get("/.well-known/openid-configuration").get_json()["issuer"]


def test_the_issuer_is_named_in_an_error_response(client: FlaskClient, rp: RegisteredClient) -> None:
    query = flows.authorize_params(rp, flows.pkce(), response_type="token")
    result = flows.query(client.get("/authorize", query_string=query).headers["Location"])
    assert result["error"] and result["iss"] == ISSUER


def test_the_issuer_is_named_when_the_citizen_denies_consent(client: FlaskClient, rp: RegisteredClient,
                                                             signed_in: Account) -> None:
    query = flows.authorize_params(rp, flows.pkce())
    response = flows.follow_to_client(client, client.get("/authorize", query_string=query), consent="deny")
    result = flows.query(response.headers["Location"])
    assert result["error"] == "access_denied" and result["iss"] == ISSUER


def test_discovery_advertises_rfc_9207(client: FlaskClient) -> None:
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert metadata["authorization_response_iss_parameter_supported"] is True
