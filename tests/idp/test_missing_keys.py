"""No signing or ledger key (a database never set up by ``idp db upgrade``): a 503 saying so, an
error page for browsers and JSON for protocol endpoints, never a 500; and the command creates them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from idp.cli import main
from idp.models import Account
from idp.services import Services
from keys.models import SigningKey
from store.db import make_engine
from tests.idp import flows
from tests.idp.flows import RegisteredClient


@pytest.fixture
def no_keys(db_session: Session, base_services: Services) -> Iterator[None]:
    """Every key gone (inside the test's transaction); the keyring's cache forgets them at once."""
    db_session.execute(delete(SigningKey))
    db_session.commit()
    base_services.keyring.invalidate_cache()
    yield
    base_services.keyring.invalidate_cache()  # the rollback brings the keys back


def test_the_consent_step_without_a_ledger_key_is_a_503_page(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, no_keys: None) -> None:
    response = flows.follow_to_client(client, client.get("/authorize", query_string=flows.authorize_params(
        rp, flows.pkce())))
    assert response.status_code == 503
    assert response.mimetype == "text/html" and response.headers["Retry-After"] == "30"
    assert "the service is unavailable" in response.get_data(as_text=True)


def test_the_token_endpoint_without_a_signing_key_is_a_503_json_error_and_spends_nothing(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, db_session: Session,
        base_services: Services) -> None:
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge)["code"]
    db_session.execute(delete(SigningKey))
    db_session.commit()
    base_services.keyring.invalidate_cache()
    try:
        response = flows.exchange_code(client, rp, code, challenge.verifier)
    finally:
        base_services.keyring.invalidate_cache()
    assert response.status_code == 503
    assert response.get_json()["error"] == "temporarily_unavailable"
    base_services.keyring.ensure(db_session)  # the keys are made: nothing was half-written, the code still works
    db_session.commit()
    assert flows.exchange_code(client, rp, code, challenge.verifier).status_code == 200


def test_db_upgrade_creates_the_signing_and_ledger_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": url}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    with engine.connect() as connection:
        live = set(connection.execute(select(SigningKey.purpose, SigningKey.alg, SigningKey.state)).all())
    engine.dispose()
    assert {("ledger", "EdDSA", "current"), ("token", "ES256", "current"), ("token", "ES256", "next"),
            ("token", "RS256", "current")} <= {tuple(row) for row in live}
