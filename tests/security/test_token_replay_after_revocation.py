"""Threat: replay of an access token after it was revoked (RFC 7009, RFC 9068 §5).

Mitigation: access tokens are JWTs but also recorded server-side, and every use at userinfo and
introspection is checked against that record, so revocation takes effect at once.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp.models import Account, RefreshToken, TokenFamily
from idp.oauth.tokens import token_hash
from tests.idp import flows
from tests.idp.flows import RegisteredClient

OFFLINE = {"scope": "openid email offline_access"}


def _revoke(client: FlaskClient, rp: RegisteredClient, token: str, hint: str) -> None:
    response = client.post("/revoke", **flows.authenticated(rp, {"token": token, "token_type_hint": hint}))
    assert response.status_code == 200


def _usable(client: FlaskClient, rp: RegisteredClient, access_token: str) -> tuple[bool, bool]:
    userinfo = client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    introspection: dict[str, Any] = client.post("/introspect", **flows.authenticated(rp, {"token": access_token}))\
        .get_json()
    return userinfo.status_code == 200, bool(introspection["active"])


def test_a_revoked_access_token_is_refused_at_userinfo_and_inactive_at_introspection(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    tokens = flows.tokens_for(client, rp)
    assert _usable(client, rp, tokens["access_token"]) == (True, True)
    _revoke(client, rp, tokens["access_token"], "access_token")
    assert _usable(client, rp, tokens["access_token"]) == (False, False)


def test_revoking_the_refresh_token_stops_its_access_tokens(client: FlaskClient, rp: RegisteredClient,
                                                            signed_in: Account) -> None:
    tokens = flows.tokens_for(client, rp, **OFFLINE)
    _revoke(client, rp, tokens["refresh_token"], "refresh_token")
    assert _usable(client, rp, tokens["access_token"]) == (False, False)



def test_a_token_whose_family_alone_is_revoked_is_refused(client: FlaskClient, db_session: Session,
                                                          rp: RegisteredClient, signed_in: Account) -> None:
    """The family's own mark is checked too, not only each token's row: a revocation that marks just
    the family (a sign-out, an account change, a future code path) still takes effect at once."""
    tokens = flows.tokens_for(client, rp, **OFFLINE)
    family_id = db_session.get(RefreshToken, token_hash(tokens["refresh_token"])).family_id  # type: ignore[union-attr]
    db_session.execute(update(TokenFamily).where(TokenFamily.id == family_id).values(revoked_at=TokenFamily.created_at))
    db_session.commit()
    assert _usable(client, rp, tokens["access_token"]) == (False, False)
