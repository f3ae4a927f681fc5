"""Account recovery: whoever knew the old password may hold the account's refresh tokens (a stolen
password used at an agency), so completing a recovery revokes every token family the account
holds, not only its sign-in sessions (docs/security.md "Secrets and data")."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Account, OutboxMessage
from idp.outbox import open_body
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _recover(client: FlaskClient, db_session: Session, email: str) -> None:
    def post(path: str, data: dict[str, str]) -> int:
        token = flows.csrf_token(client, "/recover")
        return client.post(path, data=data | {"csrf_token": token}).status_code
    post("/recover", {"email": email})
    message = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == email)
                                 .order_by(OutboxMessage.created_at.desc())).first()
    assert message is not None
    code = re.search(r"\b(\d{6})\b", open_body(db_session, message))
    assert code is not None
    post("/recover/code", {"code": code.group(1)})
    assert post("/recover/password", {"password": "a recovered and entirely new passphrase"}) == 302


def test_a_recovery_revokes_the_tokens_the_old_password_obtained(
        client: FlaskClient, db_session: Session, rp: RegisteredClient, signed_in: Account) -> None:
    held = flows.tokens_for(client, rp, scope="openid offline_access")  # by whoever had the password
    client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")})
    _recover(client, db_session, signed_in.email)
    userinfo = client.get("/userinfo", headers={"Authorization": f"Bearer {held['access_token']}"})
    assert userinfo.status_code == 401
    refreshed = flows.refresh(client, rp, held["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
