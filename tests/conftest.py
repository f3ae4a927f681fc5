"""Shared fixtures: a migrated database (SQLite, or PostgreSQL via IDP_TEST_DATABASE_URL), a
session rolled back per test, the app wired to that session, agencies, clients and citizens."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import ECKey
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session, sessionmaker

from consent.ledger import Ledger
from idp.accounts import create_account
from idp.app import build_services, create_app
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.models import Account, Agency
from idp.outbound import DestinationPolicy
from idp.registry import ClientMetadata, create_agency, create_client
from idp.services import Services
from idp.session_keys import session_info
from store.db import make_engine
from store.migrate import upgrade
from tests.idp import flows

CITIZEN_PASSWORD = "correct horse battery staple"
DEVELOPMENT_DESTINATIONS = DestinationPolicy(allow_loopback=True, production=False)  # what `settings` gives


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("IDP_TEST_DATABASE_URL")
    if url:
        _reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"
    upgrade(url)
    return url


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Settings:
    instance = tmp_path_factory.mktemp("instance")
    return Settings.from_env(environ={}, issuer="http://localhost", instance_path=instance,
                             database_url=database_url, key_cache_seconds=1)


@pytest.fixture(scope="session")
def base_services(settings: Settings) -> Iterator[Services]:
    services = build_services(settings)
    with services.sessions.begin() as session:
        services.keyring.ensure(session)  # generated once: RSA keys are slow to make
    yield services
    services.engine.dispose()


@pytest.fixture(scope="session")
def engine(base_services: Services) -> Engine:
    return base_services.engine


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """One connection and transaction per test; every commit inside is a SAVEPOINT."""
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def test_sessions(connection: Connection, settings: Settings) -> sessionmaker[Session]:
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False,
                        info=session_info(settings.key_encryption_key))


@pytest.fixture
def ledger(settings: Settings, base_services: Services) -> Ledger:
    """The service's consent ledger, keyed by the suite's keyring."""
    return ledger_for(settings, base_services.keyring)


@pytest.fixture
def db_session(test_sessions: sessionmaker[Session]) -> Iterator[Session]:
    session = test_sessions()
    yield session
    session.close()


@pytest.fixture
def app(settings: Settings, base_services: Services, test_sessions: sessionmaker[Session]) -> Flask:
    services = Services(settings=settings, engine=base_services.engine, sessions=test_sessions,
                        keyring=base_services.keyring, discovery_document=base_services.discovery_document)
    app = create_app(settings, services=services)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def agency(db_session: Session) -> Agency:
    created, _token = create_agency(db_session, "Test Agency")
    db_session.commit()
    return created


@pytest.fixture
def other_agency(db_session: Session) -> Agency:
    created, _token = create_agency(db_session, "Other Agency")
    db_session.commit()
    return created


@pytest.fixture(scope="session")
def rp_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "rp-key-1", "alg": "ES256", "use": "sig"}, private=True)


def _public_jwks(key: ECKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False)]}


def make_client(session: Session, agency: Agency, *, method: str = "private_key_jwt", key: ECKey | None = None,
                **overrides: Any) -> flows.RegisteredClient:
    metadata = ClientMetadata(
        client_name=overrides.pop("client_name", "Test Service"),
        redirect_uris=overrides.pop("redirect_uris", ["https://rp.example/cb"]),
        token_endpoint_auth_method=method,
        jwks=_public_jwks(key) if key is not None and method == "private_key_jwt" else None,
        post_logout_redirect_uris=overrides.pop("post_logout_redirect_uris", ["https://rp.example/signed-out"]),
        scope=overrides.pop("scope", "openid profile email phone address offline_access"),
        **overrides,
    )
    created, secret = create_client(session, agency, metadata, destinations=DEVELOPMENT_DESTINATIONS,
                                    allow_public_subjects=True)
    session.commit()
    return flows.RegisteredClient(model=created, secret=secret, key=key)


@pytest.fixture
def rp(db_session: Session, agency: Agency, rp_key: ECKey) -> flows.RegisteredClient:
    """The default relying party: private_key_jwt, as agencies are recommended to use."""
    return make_client(db_session, agency, key=rp_key)


@pytest.fixture
def secret_rp(db_session: Session, agency: Agency) -> flows.RegisteredClient:
    return make_client(db_session, agency, method="client_secret_basic", client_name="Secret Service")


@pytest.fixture
def public_rp(db_session: Session, agency: Agency) -> flows.RegisteredClient:
    return make_client(db_session, agency, method="none", client_name="Native App",
                       redirect_uris=["http://127.0.0.1:8765/cb"])


@pytest.fixture
def citizen(db_session: Session) -> Account:
    account = create_account(db_session, email=f"citizen-{secrets.token_hex(4)}@example.com", given_name="Ada",
                             family_name="Lovelace", password=CITIZEN_PASSWORD)
    db_session.commit()
    return account


@pytest.fixture
def signed_in(client: FlaskClient, citizen: Account) -> Account:
    """A citizen signed in to the identity service in the test browser."""
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    return citizen


def pytest_report_header() -> str:
    url = os.environ.get("IDP_TEST_DATABASE_URL")
    return f"database: {'PostgreSQL ' + url if url else 'SQLite (embedded)'}"

