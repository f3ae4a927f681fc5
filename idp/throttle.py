"""Throttling failed sign-ins per email address and per client network (sign-in.md "Abuse
resistance"), in Redis when ``IDP_REDIS_URL`` is set, else in the database.

Keys are derived from the *email typed*, not the account, so an unknown email is throttled
exactly like a known one (no enumeration). After ``FREE_FAILURES`` the wait doubles with each
failure up to ``MAX_WAIT``; at ``LOCK_AT`` failures the owner (if any) is emailed once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Protocol

from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import ThrottleCounter

WINDOW = dt.timedelta(minutes=15)
# "ceremony" counts every start of a usernameless passkey ceremony (each stores a challenge), not
# failures: generous for a busy shared network, a wall against a flood.
FREE_FAILURES = {"email": 5, "ip": 20, "ceremony": 300}
LOCK_AT = 10
BASE_WAIT = dt.timedelta(seconds=30)
MAX_WAIT = dt.timedelta(minutes=15)


@dataclasses.dataclass(frozen=True)
class Failure:
    failures: int
    locked_now: bool  # this failure crossed LOCK_AT


def email_key(email: str) -> str:
    return "email:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]


def ip_key(ip_prefix: str | None) -> str:
    return f"ip:{ip_prefix or 'unknown'}"


def ceremony_key(ip_prefix: str | None) -> str:
    return f"ceremony:{ip_prefix or 'unknown'}"


def wait_after(kind: str, failures: int) -> dt.timedelta:
    extra = failures - FREE_FAILURES[kind]
    if extra < 0:
        return dt.timedelta(0)
    return min(BASE_WAIT * 2 ** min(extra, 10), MAX_WAIT)  # 30 s · 2^10 is already past the ceiling


class Throttle(Protocol):
    def blocked_for(self, key: str) -> dt.timedelta | None: ...
    def record_failure(self, key: str) -> Failure: ...
    def reset(self, key: str) -> None: ...


class DatabaseThrottle:
    def __init__(self, session: Session) -> None:
        self.session = session

    def blocked_for(self, key: str) -> dt.timedelta | None:
        counter = self.session.get(ThrottleCounter, key)
        now = utcnow()
        if counter is None or counter.blocked_until is None or counter.blocked_until <= now:
            return None
        return counter.blocked_until - now

    def record_failure(self, key: str) -> Failure:
        now = utcnow()
        counter = self.session.get(ThrottleCounter, key, with_for_update=True)
        if counter is None:
            counter = ThrottleCounter(key=key, failures=0, window_started_at=now)
            self.session.add(counter)
        elif counter.window_started_at + WINDOW <= now and (counter.blocked_until or now) <= now:
            counter.failures, counter.window_started_at = 0, now
        counter.failures += 1
        wait = wait_after(key.split(":")[0], counter.failures)
        counter.blocked_until = now + wait if wait else None
        self.session.flush()
        return Failure(counter.failures, counter.failures == LOCK_AT)

    def reset(self, key: str) -> None:
        counter = self.session.get(ThrottleCounter, key)
        if counter is not None:
            self.session.delete(counter)


class RedisThrottle:
    """The same policy in Redis: a failure counter per key expiring with the window, and a block key."""

    def __init__(self, client: object) -> None:
        self.redis = client

    def blocked_for(self, key: str) -> dt.timedelta | None:
        ttl = self.redis.pttl(f"throttle:block:{key}")  # type: ignore[attr-defined]
        return dt.timedelta(milliseconds=ttl) if ttl and ttl > 0 else None

    def record_failure(self, key: str) -> Failure:
        pipe = self.redis.pipeline()  # type: ignore[attr-defined]
        pipe.incr(f"throttle:count:{key}")
        pipe.expire(f"throttle:count:{key}", int(MAX_WAIT.total_seconds() + WINDOW.total_seconds()), nx=True)
        failures = int(pipe.execute()[0])
        wait = wait_after(key.split(":")[0], failures)
        if wait:
            self.redis.set(f"throttle:block:{key}", 1, px=int(wait.total_seconds() * 1000))  # type: ignore[attr-defined]
        return Failure(failures, failures == LOCK_AT)

    def reset(self, key: str) -> None:
        self.redis.delete(f"throttle:count:{key}", f"throttle:block:{key}")  # type: ignore[attr-defined]


class FallbackThrottle:
    """Redis first; if Redis cannot be reached, the database (documented in README "Operating")."""

    def __init__(self, primary: Throttle, fallback: Throttle, errors: tuple[type[BaseException], ...]) -> None:
        self.primary, self.fallback, self.errors = primary, fallback, errors

    def blocked_for(self, key: str) -> dt.timedelta | None:
        try:
            return self.primary.blocked_for(key)
        except self.errors:
            return self.fallback.blocked_for(key)

    def record_failure(self, key: str) -> Failure:
        try:
            return self.primary.record_failure(key)
        except self.errors:
            return self.fallback.record_failure(key)

    def reset(self, key: str) -> None:
        try:
            self.primary.reset(key)
        except self.errors:
            self.fallback.reset(key)
