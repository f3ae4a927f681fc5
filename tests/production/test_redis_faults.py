"""A real Redis server stopped mid-run and started again (security.md "Faults"): sign-in, whose
throttling counters live in Redis when ``IDP_REDIS_URL`` is set, falls back to the database and
keeps working; when Redis is back it is used again. Nothing answers 500.

The server is a throwaway ``redis-server`` of this test's own, never the shared one on 6379.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select

from idp.app import create_app
from idp.models import Account, ThrottleCounter
from idp.services import Services
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.production import nodes


class ThrowawayRedis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            nodes.required_or_skip("needs redis-server to stop and start a Redis server")
        self.binary, self.port = str(binary), nodes.free_port()
        self.folder = tempfile.mkdtemp(prefix="idp-throwaway-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ThrowawayRedis:
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", self.folder], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclasses.dataclass
class RedisRig:
    server: ThrowawayRedis
    app: Flask


@pytest.fixture
def rig(app: Flask) -> Iterator[RedisRig]:
    server = ThrowawayRedis().start()
    services: Services = app.extensions["idp"]
    client = redis.Redis(port=server.port, socket_timeout=0.5, socket_connect_timeout=0.5)
    with_redis = create_app(services.settings, services=dataclasses.replace(services, redis=client))
    try:
        yield RedisRig(server=server, app=with_redis)
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


def attempt(app: Flask, email: str, password: str) -> int:
    browser = app.test_client()
    data = {"email": email, "password": password, "csrf_token": flows.csrf_token(browser)}
    return browser.post("/signin", data=data).status_code


def counters_in_database(app: Flask) -> int:
    with app.extensions["idp"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ThrottleCounter)) or 0)


def test_sign_in_falls_back_to_the_database_while_redis_is_down_and_returns_to_redis(
        rig: RedisRig, citizen: Account) -> None:
    assert attempt(rig.app, citizen.email, "wrong " + CITIZEN_PASSWORD) == 400
    assert redis.Redis(port=rig.server.port).dbsize() > 0 and counters_in_database(rig.app) == 0

    rig.server.stop()  # mid-run
    assert attempt(rig.app, citizen.email, "wrong " + CITIZEN_PASSWORD) == 400  # counted, not a 500
    assert counters_in_database(rig.app) > 0
    assert attempt(rig.app, citizen.email, CITIZEN_PASSWORD) == 302

    rig.server.start()
    assert attempt(rig.app, citizen.email, "wrong " + CITIZEN_PASSWORD) == 400
    assert redis.Redis(port=rig.server.port).dbsize() > 0
