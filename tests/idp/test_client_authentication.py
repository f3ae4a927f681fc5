"""Client authentication at the token endpoint: private_key_jwt (RFC 7523), client secrets, none."""

from __future__ import annotations

import base64
import time

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Account, Agency, Client
from tests.conftest import make_client
from tests.idp import flows
from tests.idp.flows import ISSUER, RegisteredClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _exchange_with_assertion(client: FlaskClient, rp: RegisteredClient, assertion: str) -> tuple[int, dict]:
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
            "code_verifier": challenge.verifier, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion}
    response = client.post("/token", data=data)
    return response.status_code, response.get_json()


def test_private_key_jwt_with_the_issuer_as_audience_is_accepted(client: FlaskClient, rp: RegisteredClient,
                                                                 signed_in: Account) -> None:
    status, body = _exchange_with_assertion(client, rp, flows.client_assertion(rp, aud=ISSUER))
    assert status == 200, body


def test_replayed_client_assertion_is_refused(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    assertion = flows.client_assertion(rp, jti="only-once")
    assert _exchange_with_assertion(client, rp, assertion)[0] == 200
    status, body = _exchange_with_assertion(client, rp, assertion)
    assert (status, body["error"]) == (400, "invalid_client")  # RFC 6749 §5.2: 401 only for header auth


@pytest.mark.parametrize("overrides", [
    {"aud": "https://elsewhere.example/token"},
    {"exp": int(time.time()) - 120},
    {"iat": int(time.time()) - 3600, "exp": int(time.time()) + 60},
    {"iss": "someone-else"},
    {"jti": ""},
])
def test_bad_client_assertions_are_refused(client: FlaskClient, rp: RegisteredClient, signed_in: Account,
                                           overrides: dict) -> None:
    status, body = _exchange_with_assertion(client, rp, flows.client_assertion(rp, **overrides))
    assert (status, body["error"]) == (400, "invalid_client")  # RFC 6749 §5.2: 401 only for header auth


def test_assertion_signed_with_another_key_is_refused(client: FlaskClient, rp: RegisteredClient,
                                                      signed_in: Account) -> None:
    stranger = ECKey.generate_key("P-256", parameters={"kid": rp.key.kid}, private=True)  # type: ignore[union-attr]
    now = int(time.time())
    claims = {"iss": rp.client_id, "sub": rp.client_id, "aud": f"{ISSUER}/token", "jti": "x", "iat": now,
              "exp": now + 60}
    assertion = jwt.encode({"alg": "ES256", "kid": stranger.kid}, claims, stranger)
    status, body = _exchange_with_assertion(client, rp, assertion)
    assert (status, body["error"]) == (400, "invalid_client")  # RFC 6749 §5.2: 401 only for header auth


def test_unsigned_assertion_is_refused(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    now = int(time.time())
    body = f'{{"iss":"{rp.client_id}","sub":"{rp.client_id}","aud":"{ISSUER}/token","jti":"u","exp":{now + 60}}}'
    header = b64(b'{"alg":"none"}')
    assertion = f"{header}.{b64(body.encode())}."
    status, result = _exchange_with_assertion(client, rp, assertion)
    assert (status, result["error"]) == (400, "invalid_client")


def test_client_secret_basic_works_and_a_wrong_secret_does_not(client: FlaskClient, secret_rp: RegisteredClient,
                                                              signed_in: Account) -> None:
    assert "access_token" in flows.tokens_for(client, secret_rp)
    challenge = flows.pkce()
    code = flows.get_code(client, secret_rp, challenge)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": secret_rp.redirect_uri,
            "code_verifier": challenge.verifier}
    wrong = base64.b64encode(f"{secret_rp.client_id}:not-the-secret".encode()).decode()
    response = client.post("/token", data=data, headers={"Authorization": f"Basic {wrong}"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_client_secret_post_works(client: FlaskClient, db_session: Session, agency: Agency,
                                  signed_in: Account) -> None:
    rp = make_client(db_session, agency, method="client_secret_post")
    assert "access_token" in flows.tokens_for(client, rp)


def test_a_client_may_only_use_its_registered_method(client: FlaskClient, secret_rp: RegisteredClient,
                                                     signed_in: Account) -> None:
    challenge = flows.pkce()
    code = flows.get_code(client, secret_rp, challenge)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": secret_rp.redirect_uri,
            "code_verifier": challenge.verifier, "client_id": secret_rp.client_id,
            "client_secret": secret_rp.secret or ""}
    response = client.post("/token", data=data)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_public_client_uses_pkce_without_a_secret(client: FlaskClient, public_rp: RegisteredClient,
                                                  signed_in: Account) -> None:
    assert "access_token" in flows.tokens_for(client, public_rp)


def test_client_secrets_are_generated_long_and_stored_hashed(db_session: Session,
                                                             secret_rp: RegisteredClient) -> None:
    assert secret_rp.secret is not None and len(secret_rp.secret) >= 43
    stored = db_session.scalar(select(Client.secret_hash).where(Client.client_id == secret_rp.client_id))
    assert stored and stored != secret_rp.secret


def test_assertion_valid_for_an_hour_but_freshly_issued_is_accepted(client: FlaskClient, rp: RegisteredClient,
                                                                   signed_in: Account) -> None:
    """Authlib's client (a common RP library) sets exp one hour ahead; freshness is judged by iat."""
    status, body = _exchange_with_assertion(client, rp, flows.client_assertion(rp, lifetime=3600))
    assert status == 200, body


def test_assertion_addressed_to_the_receiving_endpoint_is_accepted(client: FlaskClient, rp: RegisteredClient,
                                                                  signed_in: Account) -> None:
    token = flows.tokens_for(client, rp)["access_token"]
    data = {"token": token, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": flows.client_assertion(rp, aud=f"{ISSUER}/introspect")}
    assert client.post("/introspect", data=data).get_json()["active"] is True
