"""Back-Channel Logout 1.0: when a session ends, each client that took part gets a logout
token, delivered through the outbox with retries, valid by a real RP library's rules (pyoidc)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import ECKey
from oic.oic.message import BackChannelLogoutRequest
from oic.utils.keyio import KeyJar
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from idp.backchannel import BackchannelSender
from idp.models import Account, Agency, OutboxMessage
from idp.outbox import deliver_due
from store.db import utcnow
from tests.conftest import make_client
from tests.idp import flows
from tests.idp.flows import ISSUER, RegisteredClient


class Receiver:
    """A relying party's back-channel logout endpoint on loopback."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.fail_next = 0
        self.server = make_server("127.0.0.1", 0, self.app)
        self.url = f"http://127.0.0.1:{self.server.server_port}/backchannel-logout"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def app(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        if self.fail_next:
            self.fail_next -= 1
            return Response("busy", status=503)(environ, start_response)
        self.bodies.append(request.get_data(as_text=True))
        return Response(status=200)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.thread.join(timeout=5)


@pytest.fixture
def logout_rp(db_session: Session, agency: Agency, rp_key: ECKey, receiver: Receiver) -> RegisteredClient:
    return make_client(db_session, agency, key=rp_key, backchannel_logout_uri=receiver.url)


def _deliver(app: Flask) -> None:
    services = app.extensions["idp"]
    deliver_due(services.sessions, {"backchannel_logout": BackchannelSender(services.sessions, services.keyring,
                                                                            services.settings)})


def _validated(client: FlaskClient, body: str, client_id: str) -> BackChannelLogoutRequest:
    keyjar = KeyJar()
    keyjar.import_jwks(client.get("/jwks.json").get_json(), ISSUER)
    request = BackChannelLogoutRequest().from_urlencoded(body)
    request.verify(keyjar=keyjar, iss=ISSUER, aud=client_id)  # signature, iss, aud, events, no nonce
    return request


def test_signing_out_sends_a_valid_logout_token(app: Flask, client: FlaskClient, logout_rp: RegisteredClient,
                                                receiver: Receiver, signed_in: Account) -> None:
    id_token = flows.tokens_for(client, logout_rp)["id_token"]
    client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")})
    _deliver(app)
    assert len(receiver.bodies) == 1
    request = _validated(client, receiver.bodies[0], logout_rp.client_id)
    token = request["logout_token"]
    id_claims = flows_id_claims(id_token)
    assert token["sid"] == id_claims["sid"] and token["sub"] == id_claims["sub"]
    assert "nonce" not in token


def flows_id_claims(id_token: str) -> dict:
    segment = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


def test_delivery_is_retried_with_backoff_then_succeeds(app: Flask, client: FlaskClient, db_session: Session,
                                                        logout_rp: RegisteredClient, receiver: Receiver,
                                                        signed_in: Account) -> None:
    flows.tokens_for(client, logout_rp)
    receiver.fail_next = 1
    client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")})
    _deliver(app)
    message = db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "backchannel_logout")).one()
    db_session.refresh(message)
    assert message.sent_at is None and message.attempts == 1 and message.last_error == "DeliveryError: HTTP 503"
    assert message.next_attempt_at > utcnow()
    db_session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
    db_session.commit()
    _deliver(app)
    db_session.refresh(message)
    assert message.sent_at is not None and len(receiver.bodies) == 1


def test_clients_without_a_backchannel_uri_or_outside_the_session_get_nothing(
        app: Flask, client: FlaskClient, db_session: Session, rp: RegisteredClient, logout_rp: RegisteredClient,
        receiver: Receiver, signed_in: Account) -> None:
    flows.tokens_for(client, rp)  # takes part, but has no back-channel URI
    client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")})
    _deliver(app)
    assert receiver.bodies == []  # logout_rp never took part in the session


def test_rp_initiated_logout_also_notifies_the_other_clients(app: Flask, client: FlaskClient,
                                                             logout_rp: RegisteredClient, rp: RegisteredClient,
                                                             receiver: Receiver, signed_in: Account) -> None:
    flows.tokens_for(client, logout_rp)
    id_token = flows.tokens_for(client, rp)["id_token"]
    client.get("/logout", query_string={"id_token_hint": id_token})
    _deliver(app)
    assert len(receiver.bodies) == 1
    assert parse_qs(receiver.bodies[0])["logout_token"]


def test_discovery_advertises_backchannel_logout(client: FlaskClient) -> None:
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
