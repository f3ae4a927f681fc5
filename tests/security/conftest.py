"""Fixtures for the threat regression suite: a live provider for schema-driven fuzzing."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from idp.app import build_services, create_app
from idp.config import Settings
from idp.registry import create_agency
from tests.test_e2e_http import free_port


@dataclasses.dataclass(frozen=True)
class LiveServer:
    url: str


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, database_url: str, settings: Settings,
                base_services: object) -> Iterator[LiveServer]:
    """The provider on a loopback port, sharing the suite's database and key-encryption key."""
    port = free_port()
    server_settings = Settings.from_env(
        environ={}, issuer=f"http://127.0.0.1:{port}", instance_path=tmp_path_factory.mktemp("live"),
        database_url=database_url, key_cache_seconds=1, key_encryption_key=settings.key_encryption_key,
    )
    services = build_services(server_settings)
    server = make_server("127.0.0.1", port, create_app(server_settings, services=services), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="security-live", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=server_settings.issuer)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        services.engine.dispose()


@pytest.fixture
def agency_token(db_session: Session) -> str:
    """An agency's initial access token for dynamic client registration (RFC 7591 §3)."""
    _agency, token = create_agency(db_session, "Registering Agency")
    db_session.commit()
    return token
