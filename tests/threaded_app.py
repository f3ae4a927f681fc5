"""An app whose requests really run at once, for the throttle's concurrency tests (PostgreSQL): a
schema of its own, a real connection pool, and one test client (one browser) per request, all
released together by a barrier. The throttle's store is Redis or the database, as asked."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from idp.app import create_app
from idp.config import Settings
from idp.services import Services
from idp.session_keys import session_info
from store.db import Base, make_sessionmaker
from tests.idp import flows
from tests.private_schema import private_schema

STORES = ["redis", "database"]
POOL = 12  # and the engine's default overflow of 10: requests beyond it wait for a connection
REDIS_DB = 15  # the suite's throttle db (tests/idp/test_throttling.py); keys here are unique per test


def needs_postgres(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent requests need PostgreSQL (IDP_TEST_DATABASE_URL); on SQLite BEGIN IMMEDIATE "
                    "serialises them")


def redis_or_skip() -> Any:
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_timeout=2, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("REQUIRE_REDIS") == "1":  # set by CI
            pytest.fail("REQUIRE_REDIS=1 but there is no Redis on 127.0.0.1:6379", pytrace=False)
        pytest.skip("no Redis on 127.0.0.1:6379")
    return client


@contextmanager
def threaded_app(database_url: str, settings: Settings, services: Services, store: str,
                 schema: str) -> Iterator[tuple[Flask, sessionmaker[Session]]]:
    """The app on its own schema; ``store`` "redis" (a live Redis) or "database" (no Redis)."""
    needs_postgres(database_url)
    client = redis_or_skip() if store == "redis" else None
    with private_schema(database_url, schema, Base.metadata.sorted_tables, pool_size=POOL) as engine:
        sessions = make_sessionmaker(engine, info=session_info(settings.key_encryption_key))
        own = Services(settings=settings, engine=engine, sessions=sessions, keyring=services.keyring,
                       discovery_document=services.discovery_document, redis=client)
        app = create_app(settings, services=own)
        app.config["TESTING"] = True
        yield app, sessions


def a_network() -> str:
    """A client address of a network no other test (or earlier run, in Redis) has used."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.7"


def browsers(app: Flask, count: int, network: str, page: str) -> list[tuple[FlaskClient, str]]:
    """``count`` browsers from ``network``, each with its own session and the CSRF token of ``page``."""
    made = []
    for _ in range(count):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = network
        made.append((client, flows.csrf_token(client, page)))
    return made


def burst(clients: list[FlaskClient], send: Callable[[int, FlaskClient], TestResponse]) -> list[TestResponse]:
    """Every ``send`` at once, one thread per client: the responses, in client order."""
    start, results, errors = threading.Barrier(len(clients)), [None] * len(clients), []

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = send(index, clients[index])  # type: ignore[call-overload]
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return results  # type: ignore[return-value]
