"""OpenID Connect Back-Channel Logout 1.0: tell every client that took part in a session
that it has ended, through the outbox (queued in the same transaction, retried).

The logout token is signed when it is delivered, not when it is queued, so a delivery
retried later still carries a fresh ``iat``/``exp`` (§2.4 asks for a short lifetime). It is
posted through :mod:`idp.outbound` (public destinations only, a total deadline, no redirects).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from idp.config import Settings
from idp.models import Client, LoginSession, SessionParticipant
from idp.outbound import DestinationPolicy, OutboundError, fetch
from idp.outbox import DeliveryError, OpenedMessage, queue
from keys.keyring import Keyring

EVENT = "http://schemas.openid.net/event/backchannel-logout"  # §2.4
LOGOUT_TOKEN_LIFETIME = 120
TYP = "logout+jwt"  # §2.4 recommends explicit typing (RFC 8725 §3.11)


def queue_session_logout(session: Session, login: LoginSession) -> int:
    """Queue a logout token for each client with a back-channel URI that took part in ``login``."""
    client_ids = session.scalars(
        select(SessionParticipant.client_id).where(SessionParticipant.session_id == login.id)
    ).all()
    return _queue(session, account_id=login.account_id, client_ids=list(client_ids), sid=login.sid,
                  event=f"session:{login.id}")


def queue_logout(session: Session, *, account_id: str, client_ids: list[str] | None = None,
                 event: str | None = None) -> int:
    """Log the account out of the given clients (all it has sessions with, if None), every session."""
    taking_part = select(SessionParticipant.session_id)
    if client_ids is not None:
        taking_part = taking_part.where(SessionParticipant.client_id.in_(client_ids))
    # IN, not JOIN + DISTINCT: PostgreSQL cannot compare the JSON columns DISTINCT would need.
    query = select(LoginSession).where(LoginSession.account_id == account_id, LoginSession.id.in_(taking_part))
    count = 0
    for login in session.scalars(query).all():
        participants = [c for c in _participants(session, login.id) if client_ids is None or c in client_ids]
        # One token per (client, session, event): a later event (another withdrawal) is not deduped away.
        key = f"{event}:{login.id}" if event else f"session:{login.id}"
        count += _queue(session, account_id=account_id, client_ids=participants, sid=login.sid, event=key)
    return count


def _participants(session: Session, session_id: str) -> list[str]:
    query = select(SessionParticipant.client_id).where(SessionParticipant.session_id == session_id)
    return list(session.scalars(query))


def _queue(session: Session, *, account_id: str, client_ids: list[str], sid: str | None, event: str) -> int:
    if not client_ids:
        return 0
    clients = session.scalars(select(Client).where(Client.client_id.in_(client_ids),
                                                   Client.backchannel_logout_uri.is_not(None))).all()
    for client in clients:
        body = json.dumps({"client_id": client.client_id, "account_id": account_id, "sid": sid})
        queue(session, kind="backchannel_logout", recipient=client.backchannel_logout_uri or "", body=body,
              dedupe_key=f"bcl:{client.client_id}:{event}"[:200])
    return len(clients)


def logout_token(session: Session, keyring: Keyring, settings: Settings, payload: dict[str, Any]) -> str | None:
    """§2.4: iss, aud, iat, exp, jti, sub and/or sid, events; never a nonce."""
    client = session.get(Client, payload["client_id"])
    if client is None:
        return None
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer, "aud": client.client_id, "iat": now, "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(16), "sub": client.subject_for(payload["account_id"]), "events": {EVENT: {}},
    }
    if payload.get("sid"):
        claims["sid"] = payload["sid"]
    return keyring.sign_jwt(session, claims, alg=client.id_token_signed_response_alg, typ=TYP)


class BackchannelSender:
    """Delivers ``backchannel_logout`` outbox messages: an HTTP POST of the signed token (§2.5)."""

    def __init__(self, sessions: sessionmaker[Session], keyring: Keyring, settings: Settings) -> None:
        self.sessions, self.keyring, self.settings = sessions, keyring, settings
        self.policy = DestinationPolicy.from_settings(settings)

    def __call__(self, message: OpenedMessage) -> None:
        with self.sessions() as session:
            token = logout_token(session, self.keyring, self.settings, json.loads(message.body))
        if token is None:
            return  # the client was deleted: nobody left to tell
        try:
            reply = fetch(message.recipient, self.policy, form={"logout_token": token})
        except OutboundError as error:
            raise DeliveryError(f"{type(error).__name__}: {error}") from None
        if reply.status not in (200, 204):  # §2.8
            raise DeliveryError(f"HTTP {reply.status}")
