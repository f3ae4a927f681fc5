"""Threat: theft of a refresh token (RFC 9700 §4.14).

Mitigation: rotation on every use with reuse detection that revokes the whole family; the token is
bound to the client it was issued to.
"""

from __future__ import annotations

from flask.testing import FlaskClient

from idp.models import Account
from tests.idp import flows
from tests.idp.flows import RegisteredClient

OFFLINE = {"scope": "openid email offline_access"}


def test_every_refresh_rotates_the_refresh_token(client: FlaskClient, rp: RegisteredClient,
                                                 signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    second = flows.refresh(client, rp, first["refresh_token"]).get_json()
    assert second["refresh_token"] != first["refresh_token"]


def test_a_stolen_refresh_token_used_after_the_owner_revokes_the_whole_family(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    legitimate = flows.refresh(client, rp, first["refresh_token"]).get_json()
    thief = flows.refresh(client, rp, first["refresh_token"])
    assert thief.status_code == 400 and thief.get_json()["error"] == "invalid_grant"
    assert flows.refresh(client, rp, legitimate["refresh_token"]).status_code == 400
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {legitimate['access_token']}"}).status_code == 401


def test_a_refresh_token_is_useless_to_another_client(client: FlaskClient, rp: RegisteredClient,
                                                      secret_rp: RegisteredClient, signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    response = flows.refresh(client, secret_rp, first["refresh_token"])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    assert flows.refresh(client, rp, first["refresh_token"]).status_code == 200
