"""The userinfo endpoint (OIDC Core §5.3) with bearer tokens (RFC 6750)."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from idp.models import Account
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_userinfo_answers_get_and_post(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    token = flows.tokens_for(client, rp)["access_token"]
    get = client.get("/userinfo", headers=_bearer(token))
    post = client.post("/userinfo", headers=_bearer(token))
    assert get.status_code == post.status_code == 200
    assert get.get_json() == post.get_json()


def test_userinfo_sub_matches_the_id_token(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    body = flows.tokens_for(client, rp)
    info = client.get("/userinfo", headers=_bearer(body["access_token"])).get_json()
    assert info["sub"] == _payload(body["id_token"])["sub"]


def _payload(token: str) -> dict:
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def test_missing_or_bad_token_is_401_with_www_authenticate(client: FlaskClient) -> None:
    for headers in ({}, _bearer("not-a-token"), {"Authorization": "Basic abc"}):
        response = client.get("/userinfo", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_only_consented_scopes_are_released(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    token = flows.tokens_for(client, rp, scope="openid email")["access_token"]
    info = client.get("/userinfo", headers=_bearer(token)).get_json()
    assert set(info) == {"sub", "email", "email_verified"}


def test_scope_unticked_on_the_consent_page_is_not_released(client: FlaskClient, rp: RegisteredClient,
                                                            signed_in: Account) -> None:
    challenge = flows.pkce()
    params = flows.authorize_params(rp, challenge, scope="openid profile email")
    response = flows.follow_to_client(client, client.get("/authorize", query_string=params), scopes=["email"])
    code = flows.query(response.headers["Location"])["code"]
    body = flows.exchange_code(client, rp, code, challenge.verifier).get_json()
    assert body["scope"] == "email openid"
    info = client.get("/userinfo", headers=_bearer(body["access_token"])).get_json()
    assert "given_name" not in info and info["email"] == signed_in.email


def test_claims_parameter_places_a_claim_in_the_id_token(client: FlaskClient, rp: RegisteredClient,
                                                         signed_in: Account) -> None:
    claims = json.dumps({"id_token": {"email": {"essential": True}}, "userinfo": {"given_name": None}})
    body = flows.tokens_for(client, rp, scope="openid", claims=claims)
    payload = _payload(body["id_token"])
    assert payload["email"] == signed_in.email
    info = client.get("/userinfo", headers=_bearer(body["access_token"])).get_json()
    assert info["given_name"] == "Ada"


def test_revoked_access_token_is_refused_at_once(client: FlaskClient, rp: RegisteredClient,
                                                 signed_in: Account) -> None:
    token = flows.tokens_for(client, rp)["access_token"]
    client.post("/revoke", **flows.authenticated(rp, {"token": token}))
    assert client.get("/userinfo", headers=_bearer(token)).status_code == 401


@pytest.mark.parametrize("status", ["locked", "deleted"])
def test_a_locked_or_deleted_accounts_tokens_stop_working(client: FlaskClient, db_session: Session,
                                                         rp: RegisteredClient, signed_in: Account,
                                                         status: str) -> None:
    access = flows.tokens_for(client, rp)["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert client.get("/userinfo", headers=bearer).status_code == 200
    db_session.execute(update(Account).where(Account.id == signed_in.id).values(status=status))
    db_session.commit()
    assert client.get("/userinfo", headers=bearer).status_code == 401
    described = client.post("/introspect", **flows.authenticated(rp, {"token": access})).get_json()
    assert described == {"active": False}


def test_userinfo_reads_through_the_reading_session(app: Flask, client: FlaskClient, rp: RegisteredClient,
                                                    signed_in: Account, test_sessions: sessionmaker[Session],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """userinfo writes nothing, so it reads without a transaction (store.db.make_reading_sessionmaker):
    on PostgreSQL one round trip for its SELECT instead of three."""
    token = flows.tokens_for(client, rp)["access_token"]
    opened: list[Session] = []

    def reading_session() -> Session:
        opened.append(test_sessions())
        return opened[-1]

    services = app.extensions["idp"]
    monkeypatch.setitem(app.extensions, "idp", dataclasses.replace(services, reading_sessions=reading_session))
    response = client.get("/userinfo", headers=_bearer(token))
    assert response.status_code == 200 and response.get_json()["sub"]
    assert len(opened) == 1
