"""Threat: server-side request forgery and thread exhaustion through registered URIs (``jwks_uri``,
``backchannel_logout_uri``): the provider made to reach internal addresses, to wait on a slow
server, to download a huge body or to follow a redirect elsewhere.

Mitigation (idp/outbound.py, idp/oauth/client_keys.py): public destinations only, checked after
resolving at registration and at fetch time, connecting to the checked address; a total deadline,
a body limit, no redirects, at most ``MAX_OPERATIONS`` at once and no waiting for a slot; keys and
failures cached per client; assertion claims checked before any fetch. The budget under
concurrency (many requests, many clients) is tested on real gunicorn in
``test_outbound_thread_budget.py``.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session, sessionmaker

from idp.app import create_app
from idp.backchannel import BackchannelSender
from idp.config import Settings
from idp.models import Agency
from idp.oauth.client_auth import CLIENT_KEYS
from idp.oauth.client_keys import KeysUnavailable
from idp.outbound import (
    DEADLINE_SECONDS,
    MAX_OPERATIONS,
    DestinationPolicy,
    FetchFailed,
    OutboundBusy,
    OutboundError,
    fetch,
)
from idp.outbox import DeliveryError, OpenedMessage
from idp.registry import create_agency
from idp.services import Services
from store.db import utcnow
from tests.conftest import DEVELOPMENT_DESTINATIONS, make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient
from tests.security.hostile_server import HostileServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PRODUCTION = DestinationPolicy(allow_loopback=False, production=True)
MARGIN = 1.0  # scheduling slack on a shared machine
NOT_PUBLIC = ["https://127.0.0.1/jwks", "https://localhost/jwks", "https://10.1.2.3/jwks", "https://172.16.0.1/jwks",
              "https://192.168.1.1/jwks", "https://169.254.169.254/latest", "https://100.64.0.1/jwks",
              "https://0.0.0.0/jwks", "https://2130706433/jwks", "https://224.0.0.1/jwks", "https://240.0.0.1/jwks",
              "https://[::1]/jwks", "https://[::ffff:10.0.0.1]/jwks", "https://[fc00::1]/jwks", "https://[fe80::1]/jwks",
              "https://[2002:a00:1::]/jwks", "https://[64:ff9b::a00:1]/jwks", "https://[ff02::1]/jwks"]


@pytest.fixture
def hostile(rp_key: ECKey) -> Iterator[HostileServer]:
    with HostileServer({"keys": [rp_key.as_dict(private=False)]}) as server:
        yield server


def _jwks_uri_client(db_session: Session, agency: Agency, rp_key: ECKey, uri: str) -> RegisteredClient:
    return dataclasses.replace(make_client(db_session, agency, jwks_uri=uri), key=rp_key)


def _introspect(client: FlaskClient, rp: RegisteredClient, **claims: Any) -> tuple[int, dict[str, Any], float]:
    """Introspection authenticates the client exactly as /token does, without needing a code."""
    started = time.monotonic()
    response = client.post("/introspect", data={
        "token": "x", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": flows.client_assertion(rp, **{"aud": f"{flows.ISSUER}/introspect"} | claims)})
    return response.status_code, response.get_json(), time.monotonic() - started


# --- fetch rules at the token/introspection endpoints ------------------------------------------

def test_a_trickling_jwks_uri_is_abandoned_at_the_total_deadline(client: FlaskClient, db_session: Session,
                                                                 agency: Agency, rp_key: ECKey,
                                                                 hostile: HostileServer) -> None:
    rp = _jwks_uri_client(db_session, agency, rp_key, hostile.url("/trickle"))
    status, body, elapsed = _introspect(client, rp)
    assert status in (400, 401) and body["error"] == "invalid_client"
    assert "did not answer within" in body["error_description"]
    assert elapsed < DEADLINE_SECONDS + MARGIN


@pytest.mark.parametrize("path", ["/padded-jwks", "/declared-huge"])
def test_a_jwks_larger_than_the_limit_is_refused(client: FlaskClient, db_session: Session, agency: Agency,
                                                 rp_key: ECKey, hostile: HostileServer, path: str) -> None:
    rp = _jwks_uri_client(db_session, agency, rp_key, hostile.url(path))
    status, body, _elapsed = _introspect(client, rp)
    assert status in (400, 401) and "more than" in body["error_description"]


def test_a_redirecting_jwks_uri_is_not_followed(client: FlaskClient, db_session: Session, agency: Agency,
                                                rp_key: ECKey, hostile: HostileServer) -> None:
    rp = _jwks_uri_client(db_session, agency, rp_key, hostile.url("/redirect"))
    status, body, _elapsed = _introspect(client, rp)
    assert status in (400, 401) and "redirect" in body["error_description"]
    assert hostile.hits["/jwks"] == 0


@pytest.mark.parametrize("claims", [
    {"aud": "https://elsewhere.example/token"},
    {"exp": int(time.time()) - 120},
    {"iat": int(time.time()) - 3600},
    {"iss": "someone-else"},
])
def test_an_assertion_that_cannot_succeed_fetches_nothing(client: FlaskClient, db_session: Session, agency: Agency,
                                                          rp_key: ECKey, hostile: HostileServer,
                                                          claims: dict[str, Any]) -> None:
    rp = _jwks_uri_client(db_session, agency, rp_key, hostile.url("/jwks"))
    status, body, _elapsed = _introspect(client, rp, **claims)
    assert status in (400, 401) and body["error"] == "invalid_client"
    assert hostile.hits["/jwks"] == 0


def test_a_client_using_another_method_fetches_nothing(client: FlaskClient, db_session: Session, agency: Agency,
                                                       rp_key: ECKey, hostile: HostileServer) -> None:
    made = make_client(db_session, agency, method="client_secret_basic", jwks_uri=hostile.url("/jwks"))
    status, _body, _elapsed = _introspect(client, dataclasses.replace(made, key=rp_key))
    assert status in (400, 401) and hostile.hits["/jwks"] == 0


def test_keys_are_fetched_once_per_client_and_a_failure_is_remembered(client: FlaskClient, db_session: Session,
                                                                      agency: Agency, rp_key: ECKey,
                                                                      hostile: HostileServer) -> None:
    good = _jwks_uri_client(db_session, agency, rp_key, hostile.url("/jwks"))
    assert [_introspect(client, good)[0] for _ in range(3)] == [200, 200, 200]
    assert hostile.hits["/jwks"] == 1
    failing = _jwks_uri_client(db_session, agency, rp_key, hostile.url("/error"))
    answers = [_introspect(client, failing) for _ in range(3)]
    assert [status for status, _body, _elapsed in answers] == [400, 400, 400]
    assert all("HTTP 500" in body["error_description"] for _status, body, _elapsed in answers)
    assert hostile.hits["/error"] == 1


# --- the outbound mechanism itself -----------------------------------------------------------

def test_no_more_than_the_bounded_number_of_fetches_run_at_once_and_the_rest_fail_at_once(
        hostile: HostileServer) -> None:
    outcomes: list[tuple[str, float]] = []

    def attempt() -> None:
        started = time.monotonic()
        try:
            fetch(hostile.url("/trickle"), DEVELOPMENT_DESTINATIONS)
        except (FetchFailed, OutboundBusy) as error:
            outcomes.append((type(error).__name__, time.monotonic() - started))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_SECONDS + 5)
    busy = [elapsed for name, elapsed in outcomes if name == "OutboundBusy"]
    assert len(outcomes) == 8 and len(busy) == 8 - MAX_OPERATIONS
    assert max(busy) < 0.5
    assert max(elapsed for _name, elapsed in outcomes) < DEADLINE_SECONDS + MARGIN
    assert hostile.most_connections <= MAX_OPERATIONS


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch,
                                                             hostile: HostileServer) -> None:
    """DNS rebinding: a second lookup would give another address; there must be no second lookup."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebinding.test":
            lookups.append(host)
            return real("127.0.0.1" if len(lookups) == 1 else "127.0.0.2", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    reply = fetch(hostile.url("/jwks", host="rebinding.test"), DEVELOPMENT_DESTINATIONS)
    assert reply.status == 200 and lookups == ["rebinding.test"]


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_production_refuses_to_fetch_from_a_non_public_address(url: str) -> None:
    with pytest.raises(OutboundError, match="not public|https"):
        fetch(url, PRODUCTION)


def test_production_refuses_loopback_even_where_a_server_listens(hostile: HostileServer) -> None:
    for url in (hostile.url("/jwks"), hostile.url("/jwks", host="localhost")):
        with pytest.raises(OutboundError):
            fetch(url, PRODUCTION)
    assert sum(hostile.hits.values()) == 0


def test_development_allows_loopback_but_not_private_addresses(hostile: HostileServer) -> None:
    assert fetch(hostile.url("/jwks"), DEVELOPMENT_DESTINATIONS).status == 200
    with pytest.raises(OutboundError, match="not public"):
        fetch("https://10.1.2.3/jwks", DEVELOPMENT_DESTINATIONS)


# --- back-channel logout delivery (the worker) -------------------------------------------------

def _sender(app: Flask, **changes: Any) -> BackchannelSender:
    services = app.extensions["idp"]
    return BackchannelSender(services.sessions, services.keyring, dataclasses.replace(services.settings, **changes))


def _logout_message(db_session: Session, agency: Agency, rp_key: ECKey, uri: str) -> OpenedMessage:
    rp = make_client(db_session, agency, key=rp_key)
    body = f'{{"client_id": "{rp.client_id}", "account_id": "nobody", "sid": null}}'
    return OpenedMessage(id="m1", kind="backchannel_logout", recipient=uri, subject=None, body=body,
                         created_at=utcnow(), sent_at=None, failed_at=None)


def test_back_channel_logout_is_not_posted_to_loopback_in_production(app: Flask, db_session: Session,
                                                                      agency: Agency, rp_key: ECKey,
                                                                      hostile: HostileServer) -> None:
    message = _logout_message(db_session, agency, rp_key, hostile.url("/jwks"))
    with pytest.raises(DeliveryError, match="not public"):
        _sender(app, env="production")(message)
    assert sum(hostile.hits.values()) == 0


def test_back_channel_logout_delivery_ends_at_the_deadline(app: Flask, db_session: Session, agency: Agency,
                                                           rp_key: ECKey, hostile: HostileServer) -> None:
    message = _logout_message(db_session, agency, rp_key, hostile.url("/trickle"))
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="did not answer"):
        _sender(app)(message)
    assert time.monotonic() - started < DEADLINE_SECONDS + MARGIN


# --- registration ------------------------------------------------------------------------------

@pytest.fixture
def production_client(settings: Settings, base_services: Services, test_sessions: sessionmaker[Session]) -> FlaskClient:
    """The app as IDP_ENV=production configures it (only the destination rules differ here)."""
    production = dataclasses.replace(settings, env="production")
    services = Services(settings=production, engine=base_services.engine, sessions=test_sessions,
                        keyring=base_services.keyring, discovery_document=base_services.discovery_document)
    app = create_app(production, services=services)
    app.config["TESTING"] = True
    return app.test_client()


def _register(client: FlaskClient, db_session: Session, **fields: Any) -> Any:
    _agency, token = create_agency(db_session, "Registering Agency")
    db_session.commit()
    body = {"client_name": "Probe", "redirect_uris": ["https://rp.example/cb"],
            "token_endpoint_auth_method": "client_secret_basic"} | fields
    return client.post("/register", json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("field", ["jwks_uri", "backchannel_logout_uri"])
@pytest.mark.parametrize("url", [*NOT_PUBLIC, "http://127.0.0.1:8080/jwks", "http://localhost/jwks"])
def test_registration_in_production_refuses_non_public_destinations(production_client: FlaskClient,
                                                                     db_session: Session, field: str,
                                                                     url: str) -> None:
    response = _register(production_client, db_session, **{field: url})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_client_metadata"
    assert response.get_json()["error_description"].startswith(field)


def test_registration_in_production_refuses_a_host_that_does_not_resolve(production_client: FlaskClient,
                                                                         db_session: Session) -> None:
    response = _register(production_client, db_session, jwks_uri="https://rp.example/jwks")  # RFC 2606
    assert response.status_code == 400 and "does not resolve" in response.get_json()["error_description"]


def test_registration_in_development_allows_loopback_but_not_private_addresses(client: FlaskClient,
                                                                               db_session: Session) -> None:
    assert _register(client, db_session, jwks_uri="http://127.0.0.1:8080/jwks").status_code == 201
    response = _register(client, db_session, jwks_uri="https://10.1.2.3/jwks")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_client_metadata"


def test_one_fetch_per_client_is_in_flight_and_the_others_fail_at_once(hostile: HostileServer) -> None:
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            CLIENT_KEYS.keys("one-client", hostile.url("/trickle"), DEVELOPMENT_DESTINATIONS)
        except (KeysUnavailable, OutboundBusy) as error:
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_SECONDS + 5)
    assert sorted(outcomes) == ["KeysUnavailable", "OutboundBusy", "OutboundBusy", "OutboundBusy"]
    assert hostile.hits["/trickle"] == 1
