"""Authorization codes: single use, short-lived, bound to client, redirect URI and PKCE verifier
(RFC 6749 §4.1.2–4.1.3, RFC 7636 §4.6)."""

from __future__ import annotations

import datetime as dt

from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp.models import Account, AuthorizationCode
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _code(client: FlaskClient, rp: RegisteredClient) -> tuple[str, flows.Pkce]:
    challenge = flows.pkce()
    return flows.get_code(client, rp, challenge)["code"], challenge


def test_replayed_code_fails_and_revokes_the_tokens_issued_from_it(client: FlaskClient, rp: RegisteredClient,
                                                                   signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    first = flows.exchange_code(client, rp, code, challenge.verifier).get_json()
    second = flows.exchange_code(client, rp, code, challenge.verifier)
    assert second.status_code == 400
    assert second.get_json()["error"] == "invalid_grant"
    userinfo = client.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert userinfo.status_code == 401


def test_replayed_code_revokes_the_refresh_token_too(client: FlaskClient, rp: RegisteredClient,
                                                     signed_in: Account) -> None:
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge, scope="openid offline_access")["code"]
    first = flows.exchange_code(client, rp, code, challenge.verifier).get_json()
    assert "refresh_token" in first
    flows.exchange_code(client, rp, code, challenge.verifier)
    response = flows.refresh(client, rp, first["refresh_token"])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_wrong_code_verifier_is_invalid_grant(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    code, _ = _code(client, rp)
    response = flows.exchange_code(client, rp, code, flows.pkce().verifier)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_missing_code_verifier_is_refused(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    code, _ = _code(client, rp)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri}
    response = client.post("/token", **flows.authenticated(rp, data))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_code_is_bound_to_the_redirect_uri(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://rp.example/other",
            "code_verifier": challenge.verifier}
    response = client.post("/token", **flows.authenticated(rp, data))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_code_is_bound_to_the_client(client: FlaskClient, rp: RegisteredClient, secret_rp: RegisteredClient,
                                     signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
            "code_verifier": challenge.verifier}
    response = client.post("/token", **flows.authenticated(secret_rp, data))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(client: FlaskClient, db_session: Session, rp: RegisteredClient,
                                       signed_in: Account) -> None:
    code, challenge = _code(client, rp)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db_session.execute(update(AuthorizationCode).values(expires_at=past))
    db_session.commit()
    response = flows.exchange_code(client, rp, code, challenge.verifier)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_codes_live_at_most_sixty_seconds_and_are_stored_hashed(client: FlaskClient, db_session: Session,
                                                                 rp: RegisteredClient, signed_in: Account) -> None:
    code, _ = _code(client, rp)
    record = db_session.query(AuthorizationCode).one()
    assert record.code_hash != code
    assert record.expires_at - record.created_at <= dt.timedelta(seconds=60)


def test_unknown_grant_type_and_missing_parameters(client: FlaskClient, rp: RegisteredClient) -> None:
    unsupported = client.post("/token", **flows.authenticated(rp, {"grant_type": "password"}))
    assert unsupported.get_json()["error"] == "unsupported_grant_type"
    missing = client.post("/token", **flows.authenticated(rp, {"grant_type": "authorization_code"}))
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_request"
    nothing = client.post("/token", data={})
    assert nothing.status_code in (400, 401)


def test_token_endpoint_refuses_get(client: FlaskClient) -> None:
    response = client.get("/token")
    assert response.status_code == 405
    assert response.is_json
