"""Refresh tokens: issued with offline_access, rotated on every use, reuse revokes the family
(RFC 9700 §4.14.2), consent re-checked at each refresh."""

from __future__ import annotations

import datetime as dt

from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from consent.models import Consent
from idp.models import Account, RefreshToken
from idp.oauth.tokens import token_hash
from tests.idp import flows
from tests.idp.flows import RegisteredClient

OFFLINE = {"scope": "openid email offline_access"}


def test_no_refresh_token_without_offline_access(client: FlaskClient, rp: RegisteredClient,
                                                 signed_in: Account) -> None:
    assert "refresh_token" not in flows.tokens_for(client, rp)


def test_refresh_rotates_the_refresh_token(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    response = flows.refresh(client, rp, first["refresh_token"])
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    second = response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert flows.refresh(client, rp, second["refresh_token"]).status_code == 200


def test_reused_refresh_token_revokes_the_whole_family(client: FlaskClient, rp: RegisteredClient,
                                                       signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    second = flows.refresh(client, rp, first["refresh_token"]).get_json()
    reuse = flows.refresh(client, rp, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.get_json()["error"] == "invalid_grant"
    assert flows.refresh(client, rp, second["refresh_token"]).status_code == 400
    userinfo = client.get("/userinfo", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert userinfo.status_code == 401


def test_refresh_token_is_bound_to_its_client(client: FlaskClient, rp: RegisteredClient,
                                              secret_rp: RegisteredClient, signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    response = flows.refresh(client, secret_rp, first["refresh_token"])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_refresh_may_narrow_but_not_widen_the_scope(client: FlaskClient, rp: RegisteredClient,
                                                    signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    wider = flows.refresh(client, rp, first["refresh_token"], scope="openid email phone offline_access")
    assert wider.get_json()["error"] == "invalid_scope"
    narrower = flows.refresh(client, rp, first["refresh_token"], scope="openid")
    assert narrower.status_code == 200 and narrower.get_json()["scope"] == "openid"


def test_withdrawn_consent_stops_refresh(client: FlaskClient, db_session: Session, rp: RegisteredClient,
                                         signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    db_session.execute(update(Consent).values(withdrawn_at=dt.datetime.now(dt.UTC)))
    db_session.commit()
    response = flows.refresh(client, rp, first["refresh_token"])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_expired_refresh_token_is_refused(client: FlaskClient, db_session: Session, rp: RegisteredClient,
                                          signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db_session.execute(update(RefreshToken).values(expires_at=past))
    db_session.commit()
    assert flows.refresh(client, rp, first["refresh_token"]).status_code == 400


def test_refresh_tokens_are_stored_only_as_hashes(client: FlaskClient, db_session: Session, rp: RegisteredClient,
                                                  signed_in: Account) -> None:
    first = flows.tokens_for(client, rp, **OFFLINE)
    stored = db_session.scalars(select(RefreshToken.token_hash)).all()
    assert first["refresh_token"] not in stored
    assert token_hash(first["refresh_token"]) in stored
    assert len(first["refresh_token"]) >= 43  # 256 bits, base64url
