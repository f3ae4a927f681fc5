"""Throttling failed sign-ins per email and per network, the same for unknown and known emails."""

from __future__ import annotations

import datetime as dt

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.models import Account, OutboxMessage, ThrottleCounter
from idp.throttle import (
    FREE_FAILURES,
    LOCK_AT,
    SIGN_IN_PER_EMAIL,
    SIGN_IN_PER_NETWORK,
    Budget,
    DatabaseThrottle,
    Limit,
    RedisThrottle,
    Throttle,
    TooManyAttempts,
    email_key,
    guess_key,
    ip_key,
    mail_key,
    network_mail_key,
    reserve_all,
    wait_after,
    wait_words,
)
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.threaded_app import redis_or_skip


def _attempt(client: FlaskClient, email: str, password: str) -> int:
    data = {"email": email, "password": password, "csrf_token": flows.csrf_token(client)}
    return client.post("/signin", data=data).status_code


def test_repeated_failures_pause_sign_in_even_with_the_right_password(client: FlaskClient,
                                                                      citizen: Account) -> None:
    statuses = [_attempt(client, citizen.email, "wrong password!") for _ in range(FREE_FAILURES["email"] + 1)]
    assert statuses[:FREE_FAILURES["email"]] == [400] * FREE_FAILURES["email"]
    assert _attempt(client, citizen.email, CITIZEN_PASSWORD) == 429


def test_unknown_and_known_emails_are_throttled_alike(client: FlaskClient, citizen: Account) -> None:
    known = [_attempt(client, citizen.email, "wrong password!") for _ in range(7)]
    unknown = [_attempt(client, "stranger@example.com", "wrong password!") for _ in range(7)]
    assert known == unknown


def test_the_owner_is_emailed_once_when_sign_in_is_locked(client: FlaskClient, db_session: Session,
                                                          citizen: Account) -> None:
    for _ in range(LOCK_AT):
        db_session.execute(update(ThrottleCounter).values(blocked_until=None))  # skip each pause, keep the count
        db_session.commit()
        _attempt(client, citizen.email, "wrong password!")
    mails = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == citizen.email)).all()
    assert any("paused" in (mail.subject or "") for mail in mails)


def test_backoff_doubles_up_to_a_ceiling() -> None:
    free = FREE_FAILURES["email"]
    assert wait_after("email", free - 1) == dt.timedelta(0)
    assert wait_after("email", free + 1) == 2 * wait_after("email", free)
    assert wait_after("email", 100) == dt.timedelta(minutes=15)


@pytest.fixture
def redis_client():  # type: ignore[no-untyped-def]
    client = redis_or_skip()
    client.flushdb()
    yield client
    client.flushdb()


def test_redis_throttle_applies_the_same_policy(redis_client: redis.Redis) -> None:
    throttle = RedisThrottle(redis_client)
    key = email_key("someone@example.com")
    for _ in range(FREE_FAILURES["email"] - 1):
        throttle.reserve(key, SIGN_IN_PER_EMAIL)
    assert throttle.blocked_for(key) is None
    throttle.reserve(key, SIGN_IN_PER_EMAIL)
    assert throttle.blocked_for(key) is not None
    throttle.reset(key)
    assert throttle.blocked_for(key) is None


@pytest.mark.parametrize(("wait", "words"), [(dt.timedelta(seconds=5), "1 minute"), (dt.timedelta(seconds=61),
                                             "2 minutes"), (dt.timedelta(hours=1), "60 minutes")])
def test_the_wait_is_told_in_whole_minutes_rounded_up_with_the_right_plural(wait: dt.timedelta, words: str) -> None:
    assert wait_words(wait) == words


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, db_session: Session) -> Throttle:
    if request.param == "redis":
        return RedisThrottle(request.getfixturevalue("redis_client"))
    return DatabaseThrottle(db_session)


def test_a_budget_per_window_allows_its_attempts_then_a_whole_windows_wait(store: Throttle) -> None:
    budget, key = Budget.per_window(10, dt.timedelta(hours=1)), guess_key("someone@example.com")
    assert [store.reserve(key, budget) for _ in range(10)] == list(range(1, 11))
    with pytest.raises(TooManyAttempts) as refused:
        store.reserve(key, budget)
    assert dt.timedelta(minutes=59) < refused.value.wait <= dt.timedelta(hours=1)
    with pytest.raises(TooManyAttempts):
        store.reserve(key, budget)  # a refusal counts nothing and shortens nothing


def test_a_released_attempt_is_given_back_and_lifts_the_wait_it_started(store: Throttle) -> None:
    key = ip_key("192.0.2.0/24")
    for _ in range(FREE_FAILURES["ip"]):
        store.reserve(key, SIGN_IN_PER_NETWORK)
    assert store.blocked_for(key) is not None
    store.release(key, SIGN_IN_PER_NETWORK)
    assert store.blocked_for(key) is None
    assert store.reserve(key, SIGN_IN_PER_NETWORK) == FREE_FAILURES["ip"]


def test_reserving_several_limits_takes_from_none_when_one_is_spent(store: Throttle) -> None:
    spent, fresh = Limit(mail_key("a@example.com"), Budget.per_window(1, dt.timedelta(hours=1))), \
        Limit(network_mail_key("192.0.2.0/24"), Budget.per_window(5, dt.timedelta(hours=1)))
    reserve_all(store, [spent])
    with pytest.raises(TooManyAttempts):
        reserve_all(store, [spent, fresh])
    assert store.reserve(fresh.key, fresh.budget) == 1  # the refused request took nothing from it
