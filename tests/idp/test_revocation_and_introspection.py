"""Token revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from idp.models import Account, Agency
from tests.conftest import make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient

OFFLINE = {"scope": "openid email offline_access"}


def _introspect(client: FlaskClient, rp: RegisteredClient, token: str, **extra: str) -> dict:
    response = client.post("/introspect", **flows.authenticated(rp, {"token": token} | extra))
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()  # type: ignore[no-any-return]


def test_introspection_describes_an_active_access_token(client: FlaskClient, rp: RegisteredClient,
                                                        signed_in: Account) -> None:
    body = flows.tokens_for(client, rp)
    result = _introspect(client, rp, body["access_token"])
    assert result["active"] is True
    assert result["client_id"] == rp.client_id
    assert result["scope"] == body["scope"]
    assert {"sub", "exp", "iat", "iss", "token_type"} <= set(result)


def test_introspection_of_a_refresh_token(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    body = flows.tokens_for(client, rp, **OFFLINE)
    result = _introspect(client, rp, body["refresh_token"], token_type_hint="refresh_token")
    assert result["active"] is True and result["token_type"] == "refresh_token"


def test_unknown_tokens_are_inactive(client: FlaskClient, rp: RegisteredClient) -> None:
    assert _introspect(client, rp, "nonsense") == {"active": False}
    assert _introspect(client, rp, "a.b.c") == {"active": False}


def test_introspection_requires_client_authentication(client: FlaskClient, rp: RegisteredClient,
                                                      public_rp: RegisteredClient, signed_in: Account) -> None:
    token = flows.tokens_for(client, rp)["access_token"]
    assert client.post("/introspect", data={"token": token}).status_code == 401
    response = client.post("/introspect", data={"token": token, "client_id": public_rp.client_id})
    assert response.status_code in (400, 401) and response.get_json()["error"] == "invalid_client"


def test_another_agency_cannot_introspect_the_token(client: FlaskClient, db_session: Session, rp: RegisteredClient,
                                                    other_agency: Agency, signed_in: Account) -> None:
    token = flows.tokens_for(client, rp)["access_token"]
    stranger = make_client(db_session, other_agency, method="client_secret_basic")
    assert _introspect(client, stranger, token) == {"active": False}


def test_missing_token_parameter_is_invalid_request(client: FlaskClient, rp: RegisteredClient) -> None:
    response = client.post("/introspect", **flows.authenticated(rp, {}))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_revoking_an_access_token_makes_it_inactive(client: FlaskClient, rp: RegisteredClient,
                                                    signed_in: Account) -> None:
    token = flows.tokens_for(client, rp)["access_token"]
    response = client.post("/revoke", **flows.authenticated(rp, {"token": token, "token_type_hint": "access_token"}))
    assert response.status_code == 200
    assert _introspect(client, rp, token) == {"active": False}


def test_revoking_a_refresh_token_revokes_its_access_tokens(client: FlaskClient, rp: RegisteredClient,
                                                            signed_in: Account) -> None:
    body = flows.tokens_for(client, rp, **OFFLINE)
    client.post("/revoke", **flows.authenticated(rp, {"token": body["refresh_token"]}))
    assert _introspect(client, rp, body["access_token"]) == {"active": False}
    assert flows.refresh(client, rp, body["refresh_token"]).status_code == 400


def test_revoking_an_unknown_token_still_answers_200(client: FlaskClient, rp: RegisteredClient) -> None:
    assert client.post("/revoke", **flows.authenticated(rp, {"token": "unknown"})).status_code == 200


def test_public_client_can_revoke_its_own_token(client: FlaskClient, public_rp: RegisteredClient,
                                                signed_in: Account) -> None:
    token = flows.tokens_for(client, public_rp)["access_token"]
    response = client.post("/revoke", data={"token": token, "client_id": public_rp.client_id})
    assert response.status_code == 200
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_client_cannot_revoke_another_clients_token(client: FlaskClient, rp: RegisteredClient,
                                                      secret_rp: RegisteredClient, signed_in: Account) -> None:
    token = flows.tokens_for(client, rp)["access_token"]
    response = client.post("/revoke", **flows.authenticated(secret_rp, {"token": token}))
    assert response.status_code == 400
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_an_unrecognised_hint_is_only_a_hint(client: FlaskClient, rp: RegisteredClient,
                                             signed_in: Account) -> None:
    token = flows.tokens_for(client, rp)["access_token"]
    assert _introspect(client, rp, token, token_type_hint="refresh_token")["active"] is True
    response = client.post("/revoke", **flows.authenticated(rp, {"token": token, "token_type_hint": "id_token"}))
    assert response.status_code == 200
    assert _introspect(client, rp, token, token_type_hint="refresh_token") == {"active": False}
