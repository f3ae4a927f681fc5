"""Dynamic client registration (RFC 7591) and client configuration (RFC 7592)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import ECKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from idp.blueprints.registration import bp
from idp.models import Account, Agency, Client, TokenFamily
from idp.models.clients import hash_secret
from tests.idp import flows
from tests.idp.flows import ISSUER

REDIRECT_URI = "https://service.example/callback"


@pytest.fixture(autouse=True)
def registration_routes(app: Flask) -> None:
    if "registration" not in app.blueprints:  # until create_app registers it
        app.register_blueprint(bp)


def _initial_token(session: Session, agency: Agency) -> str:
    token = secrets.token_urlsafe(32)
    agency.initial_access_token_hash = hash_secret(token)
    session.commit()
    return token


@pytest.fixture
def initial_token(db_session: Session, agency: Agency) -> str:
    return _initial_token(db_session, agency)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def metadata(key: ECKey, **overrides: Any) -> dict[str, Any]:
    """Valid metadata for a private_key_jwt client; an override of None drops the field."""
    fields = {"client_name": "Registered Service", "redirect_uris": [REDIRECT_URI],
              "jwks": {"keys": [key.as_dict(private=False)]}} | overrides
    return {name: value for name, value in fields.items() if value is not None}


def register(client: FlaskClient, token: str, body: dict[str, Any]) -> TestResponse:
    return client.post("/register", json=body, headers=bearer(token))


@pytest.fixture
def registered(client: FlaskClient, initial_token: str, rp_key: ECKey) -> dict[str, Any]:
    response = register(client, initial_token, metadata(rp_key))
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def stored(session: Session, client_id: str) -> Client | None:
    session.expire_all()
    return session.get(Client, client_id)


def assert_error(response: TestResponse, status: int, error: str) -> None:
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"] == error


# --- RFC 7591 registration -----------------------------------------------------------------

def test_an_agency_registers_a_client_with_its_initial_access_token(
        client: FlaskClient, db_session: Session, agency: Agency, initial_token: str, rp_key: ECKey) -> None:
    response = register(client, initial_token, metadata(rp_key, logo_uri="https://x.example/logo.png"))
    assert response.status_code == 201, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["client_name"] == "Registered Service"
    assert body["redirect_uris"] == [REDIRECT_URI]
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body["response_types"] == ["code"]
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["subject_type"] == "pairwise"
    assert isinstance(body["client_id_issued_at"], int)
    assert body["registration_client_uri"] == f"{ISSUER}/register/{body['client_id']}"
    assert len(body["registration_access_token"]) >= 43  # 256 bits, base64url
    assert "client_secret" not in body and "logo_uri" not in body
    row = stored(db_session, body["client_id"])
    assert row is not None and row.agency_id == agency.id
    assert row.registration_access_token_hash == hash_secret(body["registration_access_token"])


def test_a_secret_method_gets_a_secret_that_is_stored_only_as_a_hash(
        client: FlaskClient, db_session: Session, initial_token: str, rp_key: ECKey) -> None:
    body = metadata(rp_key, jwks=None, token_endpoint_auth_method="client_secret_basic")
    response = register(client, initial_token, body)
    assert response.status_code == 201, response.get_json()
    registered = response.get_json()
    assert registered["client_secret"] and registered["client_secret_expires_at"] == 0
    row = stored(db_session, registered["client_id"])
    assert row is not None and row.secret_hash != registered["client_secret"]
    assert row.check_client_secret(registered["client_secret"])


def test_a_public_client_gets_no_secret(client: FlaskClient, initial_token: str, rp_key: ECKey) -> None:
    body = metadata(rp_key, jwks=None, token_endpoint_auth_method="none", redirect_uris=["http://127.0.0.1:9/cb"])
    response = register(client, initial_token, body)
    assert response.status_code == 201, response.get_json()
    assert "client_secret" not in response.get_json()


def test_the_new_client_belongs_to_the_agency_whose_token_was_used(
        client: FlaskClient, db_session: Session, other_agency: Agency, rp_key: ECKey) -> None:
    response = register(client, _initial_token(db_session, other_agency), metadata(rp_key))
    assert response.status_code == 201, response.get_json()
    row = stored(db_session, response.get_json()["client_id"])
    assert row is not None and row.agency_id == other_agency.id


@pytest.mark.parametrize("headers", [{}, bearer("not-a-token"), {"Authorization": "Basic Zm9vOmJhcg=="}],
                         ids=["missing", "wrong", "not-bearer"])
def test_registration_without_a_valid_initial_access_token_is_unauthorized(
        client: FlaskClient, db_session: Session, initial_token: str, rp_key: ECKey,
        headers: dict[str, str]) -> None:
    before = db_session.scalar(select(func.count()).select_from(Client))
    response = client.post("/register", json=metadata(rp_key), headers=headers)
    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert db_session.scalar(select(func.count()).select_from(Client)) == before


@pytest.mark.parametrize("uri", ["http://example.com/cb", "https://service.example/cb#fragment",
                                 "javascript:alert(1)", 'http://example.com/"\\caf\u00e9'])
def test_unsafe_redirect_uris_are_refused(client: FlaskClient, initial_token: str, rp_key: ECKey, uri: str) -> None:
    response = register(client, initial_token, metadata(rp_key, redirect_uris=[uri]))
    assert_error(response, 400, "invalid_redirect_uri")


def test_private_key_jwt_without_keys_is_refused(client: FlaskClient, initial_token: str, rp_key: ECKey) -> None:
    response = register(client, initial_token, metadata(rp_key, jwks=None))
    assert_error(response, 400, "invalid_client_metadata")


def test_a_jwks_holding_a_private_key_is_refused(client: FlaskClient, initial_token: str, rp_key: ECKey) -> None:
    response = register(client, initial_token, metadata(rp_key, jwks={"keys": [rp_key.as_dict(private=True)]}))
    assert_error(response, 400, "invalid_client_metadata")


def test_response_types_other_than_code_are_refused(client: FlaskClient, initial_token: str, rp_key: ECKey) -> None:
    response = register(client, initial_token, metadata(rp_key, response_types=["code", "id_token"]))
    assert_error(response, 400, "invalid_client_metadata")


@pytest.mark.parametrize("field, value", [("redirect_uris", REDIRECT_URI), ("client_name", 5),
                                          ("grant_types", [1]), ("jwks", [])])
def test_fields_of_the_wrong_json_type_are_refused(client: FlaskClient, initial_token: str, rp_key: ECKey,
                                                   field: str, value: Any) -> None:
    response = register(client, initial_token, metadata(rp_key, **{field: value}))
    assert_error(response, 400, "invalid_client_metadata")


@pytest.mark.parametrize("data, content_type", [
    ("client_name=x", "application/x-www-form-urlencoded"),
    ('{"client_name": "x"}', "text/plain"),
    ("{not json", "application/json"),
    ('["a list"]', "application/json"),
], ids=["form", "text", "malformed", "array"])
def test_a_body_that_is_not_a_json_object_is_refused(client: FlaskClient, initial_token: str,
                                                     data: str, content_type: str) -> None:
    response = client.post("/register", data=data, content_type=content_type, headers=bearer(initial_token))
    assert_error(response, 400, "invalid_client_metadata")


# --- RFC 7592 configuration ----------------------------------------------------------------

def test_the_registration_access_token_reads_the_client(client: FlaskClient, registered: dict[str, Any]) -> None:
    response = client.get(f"/register/{registered['client_id']}",
                          headers=bearer(registered["registration_access_token"]))
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body == registered
    assert "client_secret" not in body


def test_a_wrong_or_foreign_registration_token_is_unauthorized(
        client: FlaskClient, initial_token: str, rp_key: ECKey, registered: dict[str, Any]) -> None:
    other = register(client, initial_token, metadata(rp_key)).get_json()
    path = f"/register/{registered['client_id']}"
    for token in ("wrong", other["registration_access_token"], initial_token):
        for method in (client.get, client.put, client.delete):
            assert_error(method(path, json={}, headers=bearer(token)), 401, "invalid_token")


def test_an_unknown_client_looks_the_same_as_a_wrong_token(client: FlaskClient, registered: dict[str, Any]) -> None:
    token = bearer(registered["registration_access_token"])
    unknown = client.get("/register/no-such-client", headers=token)
    wrong = client.get(f"/register/{registered['client_id']}", headers=bearer("wrong"))
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_json() == wrong.get_json()
    assert unknown.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"]


def test_an_update_replaces_the_whole_registration(
        client: FlaskClient, db_session: Session, rp_key: ECKey, registered: dict[str, Any]) -> None:
    body = metadata(rp_key, client_id=registered["client_id"], client_name="Renamed Service",
                    redirect_uris=["https://service.example/new"], scope="openid email")
    response = client.put(f"/register/{registered['client_id']}", json=body,
                          headers=bearer(registered["registration_access_token"]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["client_name"] == "Renamed Service"
    assert response.get_json()["registration_access_token"] == registered["registration_access_token"]
    row = stored(db_session, registered["client_id"])
    assert row is not None
    assert (row.name, row.scope) == ("Renamed Service", "openid email")
    assert row.redirect_uris == ["https://service.example/new"] and row.post_logout_redirect_uris == []


@pytest.mark.parametrize("change", [{"client_id": "someone-else"}, {"client_id": None},
                                    {"registration_access_token": "x"}, {"client_secret": "guess"}])
def test_an_update_must_name_the_client_and_send_no_server_fields(
        client: FlaskClient, rp_key: ECKey, registered: dict[str, Any], change: dict[str, Any]) -> None:
    body = metadata(rp_key, client_id=registered["client_id"]) | change
    response = client.put(f"/register/{registered['client_id']}", json={k: v for k, v in body.items() if v},
                          headers=bearer(registered["registration_access_token"]))
    assert_error(response, 400, "invalid_request")


def test_an_update_breaking_the_rules_changes_nothing(
        client: FlaskClient, db_session: Session, rp_key: ECKey, registered: dict[str, Any]) -> None:
    body = metadata(rp_key, client_id=registered["client_id"], client_name="Renamed",
                    redirect_uris=["http://example.com/cb"])
    response = client.put(f"/register/{registered['client_id']}", json=body,
                          headers=bearer(registered["registration_access_token"]))
    assert_error(response, 400, "invalid_redirect_uri")
    row = stored(db_session, registered["client_id"])
    assert row is not None and (row.name, row.redirect_uris) == ("Registered Service", [REDIRECT_URI])


def test_an_update_may_repeat_the_current_secret_which_is_kept(
        client: FlaskClient, db_session: Session, initial_token: str, rp_key: ECKey) -> None:
    first = register(client, initial_token, metadata(rp_key, jwks=None,
                                                     token_endpoint_auth_method="client_secret_post")).get_json()
    body = metadata(rp_key, jwks=None, token_endpoint_auth_method="client_secret_post",
                    client_id=first["client_id"], client_secret=first["client_secret"], client_name="Renamed")
    response = client.put(f"/register/{first['client_id']}", json=body,
                          headers=bearer(first["registration_access_token"]))
    assert response.status_code == 200, response.get_json()
    assert "client_secret" not in response.get_json()
    row = stored(db_session, first["client_id"])
    assert row is not None and row.check_client_secret(first["client_secret"])


def test_switching_to_a_secret_method_issues_a_secret_and_switching_back_drops_it(
        client: FlaskClient, db_session: Session, rp_key: ECKey, registered: dict[str, Any]) -> None:
    path, token = f"/register/{registered['client_id']}", bearer(registered["registration_access_token"])
    to_secret = metadata(rp_key, jwks=None, token_endpoint_auth_method="client_secret_basic",
                         client_id=registered["client_id"])
    secret = client.put(path, json=to_secret, headers=token).get_json()["client_secret"]
    row = stored(db_session, registered["client_id"])
    assert row is not None and row.check_client_secret(secret)
    response = client.put(path, json=metadata(rp_key, client_id=registered["client_id"]), headers=token)
    assert response.status_code == 200, response.get_json()
    row = stored(db_session, registered["client_id"])
    assert row is not None and row.secret_hash is None


def test_delete_removes_the_client_and_its_registration_token(
        client: FlaskClient, db_session: Session, registered: dict[str, Any]) -> None:
    path, token = f"/register/{registered['client_id']}", bearer(registered["registration_access_token"])
    response = client.delete(path, headers=token)
    assert response.status_code == 204
    assert stored(db_session, registered["client_id"]) is None
    assert_error(client.get(path, headers=token), 401, "invalid_token")


# --- the registered client at work ---------------------------------------------------------

def test_a_registered_client_is_sent_to_sign_in_at_the_authorization_endpoint(
        client: FlaskClient, db_session: Session, registered: dict[str, Any]) -> None:
    row = stored(db_session, registered["client_id"])
    assert row is not None
    params = flows.authorize_params(flows.RegisteredClient(row, None, None), flows.pkce())
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].startswith("/signin?")


def test_deleting_a_client_also_deletes_its_tokens(client: FlaskClient, db_session: Session, rp_key: ECKey,
                                                   registered: dict[str, Any], signed_in: Account) -> None:
    row = stored(db_session, registered["client_id"])
    assert row is not None
    flows.tokens_for(client, flows.RegisteredClient(row, None, rp_key))
    families = select(func.count()).select_from(TokenFamily).where(TokenFamily.client_id == row.client_id)
    assert db_session.scalar(families) == 1
    response = client.delete(f"/register/{row.client_id}", headers=bearer(registered["registration_access_token"]))
    assert response.status_code == 204
    assert db_session.scalar(families) == 0
