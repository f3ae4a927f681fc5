"""Secrets and data (security.md): client secrets, refresh tokens, one-time codes, invitation and
registration tokens are stored only as hashes, private keys only encrypted, and the emails that
carry codes and links only sealed (then erased once sent).

Each test produces the secret through the service, then reads every row of every table directly
(``SELECT *``), the outbox included, and looks for it.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from consent import delegations as lifecycle
from consent.delegations import Terms
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.delegation_effects import send_invitation
from idp.models import Account, EmailChallenge, OutboxMessage
from idp.outbox import deliver_due, open_body
from idp.services import Services
from keys.digests import secret_digest
from tests.idp import flows
from tests.idp.flows import RegisteredClient

NOT_SCANNED = {"alembic_version"}


def stored_text(connection: Connection, only: str | None = None) -> str:
    """Every value of every table (or of one), as text, bytes decoded leniently."""
    parts: list[str] = []
    for table in inspect(connection).get_table_names():
        if table in NOT_SCANNED or (only and table != only):
            continue
        for row in connection.execute(text(f'SELECT * FROM "{table}"')):
            for value in row:
                parts.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return "\n".join(parts)


def test_a_client_secret_is_stored_only_as_a_hash(connection: Connection, secret_rp: RegisteredClient) -> None:
    assert secret_rp.secret and len(secret_rp.secret) >= 32
    dump = stored_text(connection)
    assert secret_rp.client_id in dump and secret_rp.secret not in dump  # the scan sees the row


def test_codes_refresh_and_access_tokens_are_stored_only_as_hashes(client: FlaskClient, connection: Connection,
                                                                   rp: RegisteredClient, signed_in: Account) -> None:
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge, scope="openid offline_access")["code"]
    assert code not in stored_text(connection)
    tokens = flows.exchange_code(client, rp, code, challenge.verifier).get_json()
    refreshed = flows.refresh(client, rp, tokens["refresh_token"]).get_json()
    dump = stored_text(connection)
    for secret in (code, tokens["refresh_token"], refreshed["refresh_token"], tokens["access_token"],
                   challenge.verifier):
        assert secret not in dump


def test_an_emailed_one_time_code_is_stored_only_as_a_hash(client: FlaskClient, db_session: Session,
                                                           connection: Connection) -> None:
    email = "newcomer-secrets@example.com"
    client.post("/signup", data={"email": email, "csrf_token": flows.csrf_token(client, "/signup")})
    sent = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == email)).first()
    body = open_body(db_session, sent) if sent else ""
    code = re.search(r"\b(\d{6})\b", body)
    assert code, body
    assert code.group(1) not in stored_text(connection, only="email_challenges")
    # A database read alone cannot try the million codes against the digest: it is keyed.
    row = db_session.scalars(select(EmailChallenge).where(EmailChallenge.email == email)).one()
    assert row.code_hash != secret_digest(f"{row.id}:{code.group(1)}")


def test_invitation_and_registration_tokens_are_stored_only_as_hashes(
        client: FlaskClient, db_session: Session, connection: Connection, settings: Settings,
        base_services: Services, citizen: Account, agency_token: str) -> None:
    ledger = ledger_for(settings, base_services.keyring)
    _delegation, invitation = lifecycle.invite_delegate(db_session, citizen.id, "carer-secrets@example.com",
                                                        Terms(type="carer", mode="act"), ledger=ledger)
    db_session.commit()
    registered = client.post("/register", headers={"Authorization": f"Bearer {agency_token}"}, json={
        "client_name": "Secrets", "redirect_uris": ["https://rp.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic"}).get_json()
    dump = stored_text(connection)
    for secret in (invitation, agency_token, registered["registration_access_token"], registered["client_secret"]):
        assert secret not in dump


def test_private_keys_are_stored_only_encrypted(connection: Connection, db_session: Session,
                                                base_services: Services) -> None:
    dump = stored_text(connection)
    assert "PRIVATE KEY" not in dump
    for alg in ("ES256", "RS256", "PS256", "EdDSA"):
        private = base_services.keyring.signing_key(db_session, alg).private_key
        der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        assert der.decode("latin-1") not in dump, alg


def test_emailed_codes_and_links_are_never_in_the_outbox_in_clear_before_or_after_sending(
        client: FlaskClient, db_session: Session, connection: Connection, test_sessions: sessionmaker[Session],
        settings: Settings, base_services: Services, citizen: Account) -> None:
    email = "outbox-secrets@example.com"
    client.post("/signup", data={"email": email, "csrf_token": flows.csrf_token(client, "/signup")})
    ledger = ledger_for(settings, base_services.keyring)
    _delegation, invitation = lifecycle.invite_delegate(db_session, citizen.id, "carer-outbox@example.com",
                                                        Terms(type="carer", mode="act"), ledger=ledger)
    send_invitation(db_session, to="carer-outbox@example.com", principal=citizen, delegation=_delegation,
                    link=f"{settings.issuer}/delegation/invitation/{invitation}")
    db_session.commit()
    queued = db_session.scalars(select(OutboxMessage)).all()
    bodies = "\n".join(open_body(db_session, message) for message in queued)
    code = re.search(r"\b(\d{6})\b", bodies).group(1)  # type: ignore[union-attr]
    assert invitation in bodies  # the messages do carry them, to their owners
    for moment in ("queued", "sent"):
        outbox = stored_text(connection, only="outbox_messages")
        assert code not in outbox and invitation not in outbox, moment
        assert "It expires in 10 minutes" not in outbox and "open this link" not in outbox, moment  # no clear body
        assert invitation not in stored_text(connection), moment
        deliver_due(test_sessions, {"email": lambda _message: None})
    db_session.expire_all()
    assert {open_body(db_session, message) for message in db_session.scalars(select(OutboxMessage))} == {""}
