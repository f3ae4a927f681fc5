"""Liveness and readiness (operations.md "Production and scale"): what a load balancer polls."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.app import create_app
from idp.blueprints import health
from idp.config import Settings
from idp.services import Services
from keys.encryption import KeyEncryptor
from keys.keyring import Keyring


def test_healthz_answers_without_touching_anything(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_checks_database_keys_and_migrations(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ready",
                                   "checks": {"database": "ok", "keys": "ok", "migrations": "current"}}


def test_readyz_is_not_ready_when_the_schema_is_behind_this_release(client: FlaskClient,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    known, heads = health._revisions(client.application.extensions["idp"].settings.database_url)
    monkeypatch.setattr(health, "_revisions", lambda _url: (known | {"newer"}, frozenset({"newer"})))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["migrations"] == "behind"


def test_readyz_stays_ready_when_a_newer_release_already_migrated(client: FlaskClient,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Rolling upgrade: the new release migrated first; its migrations keep the old one working.
    monkeypatch.setattr(health, "_revisions", lambda _url: (frozenset({"older"}), frozenset({"older"})))
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["migrations"] == "ahead"


def test_readyz_is_not_ready_when_this_node_cannot_decrypt_the_signing_keys(app: Flask) -> None:
    services: Services = app.extensions["idp"]
    wrong_kek = Keyring(KeyEncryptor(secrets.token_bytes(32)), cache_seconds=0)
    other = create_app(services.settings, services=Services(
        settings=services.settings, engine=services.engine, sessions=services.sessions, keyring=wrong_kek,
        discovery_document=services.discovery_document))
    response = other.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["keys"] == "unusable"


def test_readyz_is_not_ready_without_a_database(tmp_path: Path, settings: Settings) -> None:
    unreachable = Settings.from_env(environ={}, issuer=settings.issuer, instance_path=tmp_path,
                                    database_url=f"sqlite:///{tmp_path}/missing/folder/idp.sqlite")
    client = create_app(unreachable).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "unavailable"
    assert client.get("/healthz").status_code == 200  # alive: a restart would not help
