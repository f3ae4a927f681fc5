"""A fresh PostgreSQL database started the documented way (docs/deploy.md): ``idp db upgrade``,
then gunicorn. The first citizen reaches the service through sign-in and consent; a node started
before the keys existed answers 503 (not 500) and uses the keys as soon as they are made."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from idp.accounts import create_account
from idp.app import build_services
from idp.config import Settings
from idp.services import Services
from store.db import make_engine
from store.migrate import upgrade
from tests.production import nodes
from tests.production.conftest import schema_url, seed
from tests.production.nodes import Node, RelyingParty

SCHEMA = "fresh_start"
IDP = Path(sys.executable).with_name("idp")


@pytest.fixture
def empty_database(postgres_url: str) -> Iterator[str]:
    """A schema with nothing in it, not even the migrations."""
    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    yield schema_url(postgres_url, SCHEMA)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{SCHEMA}" CASCADE'))
    engine.dispose()


def db_upgrade(env: dict[str, str]) -> None:
    done = subprocess.run([str(IDP), "db", "upgrade"], env=nodes.process_environment(env), capture_output=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def citizen_and_service(env: dict[str, str]) -> tuple[Services, RelyingParty, str]:
    services = build_services(Settings.from_env(environ=env))
    rp, _agency = seed(services, env["IDP_ISSUER"], ensure_keys=False)  # the start-up makes them
    email = f"first-{secrets.token_hex(4)}@example.com"
    with services.sessions.begin() as session:
        create_account(session, email=email, given_name="Ada", family_name="Lovelace", password=nodes.PASSWORD)
    return services, rp, email


def sign_in_and_redeem(node: Node, rp: RelyingParty, email: str) -> requests.Response:
    url, params = rp.authorize_url(node)
    visit = nodes.browse(nodes.browser(), url, email=email)
    code = nodes.callback(visit, rp, params)["code"]
    return requests.post(f"{node.url}/token", data=rp.code_request(code, params["code_verifier"]),
                         timeout=nodes.TIMEOUT)


def test_the_documented_start_up_serves_the_first_sign_in_through_consent(
        empty_database: str, tmp_path: Path) -> None:
    env = nodes.production_environment(issuer="https://idp.fresh.test", database_url=empty_database,
                                       instance=tmp_path)
    db_upgrade(env)
    services, rp, email = citizen_and_service(env)
    node = Node("fresh", nodes.free_port(), env, tmp_path / "fresh.log").start()
    try:
        response = sign_in_and_redeem(node, rp, email)
        assert response.status_code == 200, response.text
        assert "id_token" in response.json()
    finally:
        node.stop()
        services.engine.dispose()


def test_a_node_started_before_the_keys_exist_answers_503_then_uses_them_at_once(
        empty_database: str, tmp_path: Path) -> None:
    env = nodes.production_environment(issuer="https://idp.fresh.test", database_url=empty_database,
                                       instance=tmp_path, IDP_KEY_CACHE_SECONDS="600")
    upgrade(empty_database)  # the schema only: no keys yet
    services, rp, email = citizen_and_service(env)
    node = Node("early", nodes.free_port(), env, tmp_path / "early.log").start(ready="/healthz")
    try:
        assert requests.get(f"{node.url}/readyz", timeout=nodes.TIMEOUT).status_code == 503
        url, _params = rp.authorize_url(node)
        with pytest.raises(AssertionError, match="503"):  # the consent step: the page says unavailable
            nodes.browse(nodes.browser(), url, email=email)
        db_upgrade(env)
        response = sign_in_and_redeem(node, rp, email)  # within the 600 s the keys could be cached
        assert response.status_code == 200, response.text
        assert '"status":500' not in node.log_path.read_text()
    finally:
        node.stop()
        services.engine.dispose()
