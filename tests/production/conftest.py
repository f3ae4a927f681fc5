"""Two gunicorn nodes of one production deployment sharing one PostgreSQL (and Redis when
reachable): the multi-node suite. Without PostgreSQL these tests skip with the reason; CI
sets IDP_TEST_REQUIRE_PRODUCTION=1 in its PostgreSQL pass so that a skip fails instead."""

from __future__ import annotations

import dataclasses
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import make_url, text

from idp.accounts import create_account
from idp.app import build_services
from idp.config import Settings
from idp.models import Account
from idp.outbound import DestinationPolicy
from idp.registry import ClientMetadata, create_agency, create_client
from idp.services import Services
from store.db import make_engine
from store.migrate import upgrade
from tests.production import nodes
from tests.production.nodes import Node, RelyingParty

SCHEMA = "multinode"  # its own schema: rotations and commits here never touch the suite's data
KEY_CACHE_SECONDS = 2
REDIS = ("127.0.0.1", 6379)


@pytest.fixture(scope="session")
def postgres_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        nodes.required_or_skip("needs PostgreSQL: set IDP_TEST_DATABASE_URL, e.g. "
                               "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    return database_url


@dataclasses.dataclass
class Cluster:
    a: Node
    b: Node
    rp: RelyingParty
    services: Services  # in the test process, for seeding and for looking at the database
    env: dict[str, str]
    agency_id: str

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.a, self.b


def schema_url(base: str, schema: str) -> str:
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def fresh_schema(base: str, schema: str) -> str:
    engine = make_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = schema_url(base, schema)
    upgrade(url)
    return url


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5):
            return True
    except OSError:
        return False


def seed(services: Services, issuer: str, *, ensure_keys: bool = True) -> tuple[RelyingParty, str]:
    key = ECKey.generate_key("P-256", private=True,
                             parameters={"kid": f"rp-{secrets.token_hex(4)}", "alg": "ES256", "use": "sig"})
    redirect_uri = "https://rp.multinode.test/cb"
    with services.sessions.begin() as session:
        if ensure_keys:
            services.keyring.ensure(session)
        agency, _token = create_agency(session, "Multi-node Agency")
        client, _secret = create_client(session, agency, ClientMetadata(
            client_name="Multi-node Service", redirect_uris=[redirect_uri],
            token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]},
            scope=nodes.SCOPE,
        ), destinations=DestinationPolicy.from_settings(services.settings))
        return RelyingParty(issuer=issuer, client_id=client.client_id, key=key, redirect_uri=redirect_uri), agency.id


@pytest.fixture(scope="session")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("cluster")
    issuer = "https://idp.multinode.test"  # the load balancer's address: one issuer for all nodes
    extra = {"IDP_KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS)}
    if redis_reachable():
        extra["IDP_REDIS_URL"] = "redis://{}:{}/7".format(*REDIS)
    env = nodes.production_environment(issuer=issuer, database_url=fresh_schema(postgres_url, SCHEMA),
                                       instance=folder, **extra)
    services = build_services(Settings.from_env(environ=env))
    rp, agency_id = seed(services, issuer)
    a = Node("a", nodes.free_port(), env, folder / "a.log")
    b = Node("b", nodes.free_port(), env, folder / "b.log")
    try:
        a.start("--access-logfile", "-")  # gunicorn's access log too, to check what it writes
        b.start("--access-logfile", "-")
        yield Cluster(a=a, b=b, rp=rp, services=services, env=env, agency_id=agency_id)
    finally:
        a.stop()
        b.stop()
        services.engine.dispose()


@pytest.fixture
def node_citizen(cluster: Cluster) -> Account:
    """A citizen of their own per test, so tests never see each other's sessions or consents."""
    with cluster.services.sessions.begin() as session:
        return create_account(session, email=f"node-{secrets.token_hex(6)}@example.com", given_name="Mary",
                              family_name="Somerville", password=nodes.PASSWORD)


def log_paths(cluster: Cluster) -> list[Path]:
    return [node.log_path for node in cluster.nodes]
