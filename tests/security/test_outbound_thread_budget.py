"""Threat: thread exhaustion through a slow ``jwks_uri``. Found from outside: one registered URI
that trickles bytes plus 16 token requests (needing only the client_id) held every thread of a
node, and its ``/healthz`` timed out for a minute.

Mitigation (idp/outbound.py): a total deadline per fetch, at most ``MAX_OPERATIONS`` fetches at
once per process with no waiting for a slot, one fetch in flight per client and failures
remembered (idp/oauth/client_keys.py). Budget: whatever the number of requests and clients, a
worker process gives outbound fetches at most ``MAX_OPERATIONS`` of its threads, each for at most
``DEADLINE_SECONDS``; every other request is answered at once.

On a real gunicorn node (one worker with gunicorn_conf's 4 threads) in development mode, the only
mode that lets it fetch from loopback, on PostgreSQL like production; clients are registered over
HTTP, as an attacker holding an agency's initial access token would.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import make_url, text

from idp.app import build_services
from idp.config import Settings
from idp.outbound import DEADLINE_SECONDS, MAX_OPERATIONS
from idp.registry import create_agency
from store.db import make_engine
from store.migrate import upgrade
from tests.production import nodes
from tests.production.nodes import ASSERTION_TYPE, Node
from tests.security.hostile_server import HostileServer

SCHEMA = "outbound_budget"
CLIENTS, REQUESTS_PER_CLIENT = 4, 5  # 20 token requests against 4 threads
PROMPT = 1.0  # seconds within which /healthz must answer while the attack runs


@dataclasses.dataclass
class Target:
    node: Node
    issuer: str
    initial_access_token: str


def _fresh_schema(base: str) -> str:
    engine = make_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    engine.dispose()
    url = make_url(base).update_query_dict({"options": f"-csearch_path={SCHEMA}"}).render_as_string(False)
    upgrade(url)
    return url


def _environment(port: int, database_url: str, folder: Path) -> dict[str, str]:
    return {"IDP_ENV": "development", "IDP_ISSUER": f"http://localhost:{port}", "IDP_DATABASE_URL": database_url,
            "IDP_SECRET_KEY": nodes.random_secret(), "IDP_KEY_ENCRYPTION_KEY": nodes.random_secret(),
            "IDP_INSTANCE_PATH": str(folder), "IDP_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def target(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if not database_url.startswith("postgresql"):
        nodes.required_or_skip("needs PostgreSQL (a gunicorn node shares the test database server): set "
                               "IDP_TEST_DATABASE_URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    folder, port = tmp_path_factory.mktemp("outbound-budget"), nodes.free_port()
    env = _environment(port, _fresh_schema(database_url), folder)
    services = build_services(Settings.from_env(environ=env))
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        _agency, token = create_agency(session, "Hostile Agency")
    services.engine.dispose()
    node = Node("outbound", port, env, folder / "node.log", workers=1, threads=4)
    try:
        yield Target(node=node.start(), issuer=env["IDP_ISSUER"], initial_access_token=token)
    finally:
        node.stop()


def _register(target: Target, jwks_uri: str) -> str:
    response = requests.post(f"{target.node.url}/register", timeout=nodes.TIMEOUT, json={
        "client_name": "Slow keys", "redirect_uris": ["https://rp.example/cb"], "jwks_uri": jwks_uri},
        headers={"Authorization": f"Bearer {target.initial_access_token}"})
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


def _token_request(target: Target, client_id: str, key: ECKey, outcomes: list[tuple[int, float]]) -> None:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": f"{target.issuer}/token", "jti": secrets.token_urlsafe(16),
              "iat": now, "exp": now + 60}
    assertion = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)
    started = time.monotonic()
    try:
        response = requests.post(f"{target.node.url}/token", timeout=30, data={
            "grant_type": "authorization_code", "code": "x", "redirect_uri": "https://rp.example/cb",
            "code_verifier": "x" * 43, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
    except requests.RequestException:
        outcomes.append((0, time.monotonic() - started))  # no answer at all: counted as a failure below
        return
    outcomes.append((response.status_code, time.monotonic() - started))


def _health_probe(target: Target) -> float:
    started = time.monotonic()
    try:
        response = requests.get(f"{target.node.url}/healthz", timeout=PROMPT * 3)
    except requests.Timeout:
        return float("inf")
    assert response.status_code == 200
    return time.monotonic() - started


def test_slow_jwks_uris_leave_the_node_answering(target: Target) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256"}, private=True)
    with HostileServer({"keys": [key.as_dict(private=False)]}) as hostile:
        client_ids = [_register(target, hostile.url("/trickle")) for _ in range(CLIENTS)]
        outcomes: list[tuple[int, float]] = []
        attack = [threading.Thread(target=_token_request, args=(target, client_id, key, outcomes))
                  for client_id in client_ids for _ in range(REQUESTS_PER_CLIENT)]
        for thread in attack:
            thread.start()
        time.sleep(0.5)  # the attack's requests are in the node's queue before the probes
        probes = [_health_probe(target) for _ in range(3)]
        for thread in attack:
            thread.join(timeout=60)
        most_connections = hostile.most_connections
    assert max(probes) < PROMPT, f"/healthz took {probes} s while the attack ran"
    assert len(outcomes) == CLIENTS * REQUESTS_PER_CLIENT
    assert {status for status, _elapsed in outcomes} <= {400, 401, 503}
    assert max(elapsed for _status, elapsed in outcomes) < DEADLINE_SECONDS + 2
    assert most_connections <= MAX_OPERATIONS
