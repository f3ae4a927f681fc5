"""Threat: beating a throttle with simultaneous requests, each checked before any is counted
(security.md "credential stuffing", "code and link guessing": "under concurrency").

Mitigation: each attempt is reserved atomically before it runs (a Redis script, or the counter row
locked with SELECT … FOR UPDATE), so a burst gets no more than the budget. PostgreSQL only (on
SQLite BEGIN IMMEDIATE serialises every request); for the Redis store and the database store.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import idp.blueprints.signin
from idp.accounts import create_account
from idp.config import Settings
from idp.email_codes import issue_code
from idp.models import EmailChallenge
from idp.services import Services
from tests.conftest import CITIZEN_PASSWORD
from tests.threaded_app import STORES, a_network, browsers, burst, threaded_app

BURST, PASSWORDS, GUESSES = 50, 5, 10


@pytest.fixture(params=STORES)
def threaded(request: pytest.FixtureRequest, database_url: str, settings: Settings,
             base_services: Services) -> Iterator[tuple[Flask, sessionmaker[Session]]]:
    with threaded_app(database_url, settings, base_services, request.param, "throttle_burst_threat") as app:
        yield app


def victim(sessions: sessionmaker[Session]) -> str:
    with sessions.begin() as session:
        return create_account(session, email=f"victim-{secrets.token_hex(4)}@example.com", given_name="Vic",
                              family_name="Tim", password=CITIZEN_PASSWORD).email


def test_a_burst_of_passwords_is_checked_no_more_than_the_allowance(
        threaded: tuple[Flask, sessionmaker[Session]], monkeypatch: pytest.MonkeyPatch) -> None:
    app, sessions = threaded
    email, network, checked, lock = victim(sessions), a_network(), [0], threading.Lock()
    verify = idp.blueprints.signin.verify_password

    def counted(password_hash: str | None, password: str) -> bool:
        with lock:
            checked[0] += 1
        return verify(password_hash, password)

    monkeypatch.setattr(idp.blueprints.signin, "verify_password", counted)
    clients, tokens = zip(*browsers(app, BURST, network, "/signin"), strict=True)
    burst(list(clients), lambda n, client: client.post("/signin", data={"email": email, "password": f"guess {n}",
                                                                   "csrf_token": tokens[n]}))
    assert checked[0] <= PASSWORDS
    right = clients[0].post("/signin", data={"email": email, "password": CITIZEN_PASSWORD, "csrf_token": tokens[0]})
    assert right.status_code == 429  # the right password, after the burst: refused


def test_a_burst_of_code_guesses_over_many_challenges_is_checked_ten_times_at_most(
        threaded: tuple[Flask, sessionmaker[Session]]) -> None:
    app, sessions = threaded
    email, network = victim(sessions), a_network()
    with sessions.begin() as session:
        challenges = [issue_code(session, purpose="recovery", email=email, account_id=None)[0].id
                      for _ in range(BURST)]
    clients, tokens = zip(*browsers(app, BURST, network, "/recover"), strict=True)
    for client, challenge in zip(clients, challenges, strict=True):
        with client.session_transaction() as flow:
            flow["recovery"] = challenge
    burst(list(clients), lambda n, client: client.post("/recover/code",
                                                       data={"code": "123456", "csrf_token": tokens[n]}))
    with sessions() as session:
        guessed = session.scalar(select(func.sum(EmailChallenge.attempts)).where(EmailChallenge.email == email))
    assert guessed <= GUESSES
