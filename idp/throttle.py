"""Attempt budgets per email address and per client network (sign-in.md "Abuse resistance";
security.md "credential stuffing", "code and link guessing"), in Redis when ``IDP_REDIS_URL`` is
set, else in the database.

Every attempt that costs us or the citizen something (a password checked, an emailed code or link
checked, an email sent) is first *reserved*: one atomic step that refuses it while a wait runs, or
counts it and starts the wait it earns. Only a reserved attempt goes ahead, so a burst of
simultaneous requests gets no more than the budget (the database locks the counter row; Redis runs
one script). An attempt that turns out well can be given back (``release``): a network is charged
only for what failed.

Keys are derived from the *email typed*, not the account, so an unknown email is throttled
exactly like a known one (no enumeration). A :class:`Budget` gives ``free`` attempts; after them
the wait starts at ``first_wait`` and doubles with each further attempt up to ``max_wait``. The
count is forgotten ``window`` after the latest attempt, once no wait runs: so a budget whose waits
are all ``window`` long allows at most ``free`` attempts in any ``window`` (a run of attempts ends
with a wait of a whole window, and the next run starts after it). At ``LOCK_AT`` failed sign-ins the
owner (if any) is emailed once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from idp.models import ThrottleCounter
from store.db import run, utcnow


@dataclasses.dataclass(frozen=True)
class Budget:
    free: int  # attempts before the first wait
    window: dt.timedelta  # the count is forgotten this long after the latest attempt
    first_wait: dt.timedelta
    max_wait: dt.timedelta

    def wait_after(self, attempts: int) -> dt.timedelta:
        extra = attempts - self.free
        if extra < 0:
            return dt.timedelta(0)
        doubled: dt.timedelta = self.first_wait * (1 << min(extra, 10))  # 2^10 is already past any ceiling
        return min(doubled, self.max_wait)

    @classmethod
    def per_window(cls, attempts: int, window: dt.timedelta) -> Budget:
        """At most ``attempts`` in any ``window``: after the last one, a whole window's wait."""
        return cls(free=attempts, window=window, first_wait=window, max_wait=window)


WINDOW = dt.timedelta(minutes=15)
HOUR = dt.timedelta(hours=1)
BASE_WAIT = dt.timedelta(seconds=30)
MAX_WAIT = dt.timedelta(minutes=15)
SIGN_IN_PER_EMAIL = Budget(free=5, window=WINDOW, first_wait=BASE_WAIT, max_wait=MAX_WAIT)
SIGN_IN_PER_NETWORK = Budget(free=20, window=WINDOW, first_wait=BASE_WAIT, max_wait=MAX_WAIT)
# Every start of a usernameless passkey ceremony (each stores a challenge), not failures: generous
# for a busy shared network, a wall against a flood.
CEREMONIES_PER_NETWORK = Budget(free=300, window=WINDOW, first_wait=BASE_WAIT, max_wait=MAX_WAIT)
# security.md "code and link guessing": every check of an emailed code or link, across challenges.
GUESSES_PER_ADDRESS = Budget.per_window(10, HOUR)
GUESSES_PER_NETWORK = Budget.per_window(50, HOUR)  # failed ones only: a right code is given back
EMAILS_PER_NETWORK = Budget.per_window(100, HOUR)  # per address: Settings.emails_per_address_per_hour
FREE_FAILURES = {"email": SIGN_IN_PER_EMAIL.free, "ip": SIGN_IN_PER_NETWORK.free,
                 "ceremony": CEREMONIES_PER_NETWORK.free}
LOCK_AT = 10


class TooManyAttempts(Exception):
    """A budget is spent: nothing was attempted; ``wait`` until the next attempt is allowed."""

    def __init__(self, wait: dt.timedelta, reason: str = "You have tried too many times.") -> None:
        super().__init__(reason)
        self.wait, self.reason = wait, reason


@dataclasses.dataclass(frozen=True)
class Limit:
    key: str
    budget: Budget


def _digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]


def email_key(email: str) -> str:
    return "email:" + _digest(email)


def ip_key(ip_prefix: str | None) -> str:
    return f"ip:{ip_prefix or 'unknown'}"


def ceremony_key(ip_prefix: str | None) -> str:
    return f"ceremony:{ip_prefix or 'unknown'}"


def guess_key(email: str) -> str:
    return "guess:" + _digest(email)


def network_guess_key(ip_prefix: str | None) -> str:
    return f"guessnet:{ip_prefix or 'unknown'}"


def mail_key(email: str) -> str:
    return "mail:" + _digest(email)


def network_mail_key(ip_prefix: str | None) -> str:
    return f"mailnet:{ip_prefix or 'unknown'}"


def wait_after(kind: str, failures: int) -> dt.timedelta:
    """The sign-in wait after ``failures`` failures of an ``email``, ``ip`` or ``ceremony`` key."""
    budgets = {"email": SIGN_IN_PER_EMAIL, "ip": SIGN_IN_PER_NETWORK, "ceremony": CEREMONIES_PER_NETWORK}
    return budgets[kind].wait_after(failures)


def wait_words(wait: dt.timedelta) -> str:
    """"1 minute", "5 minutes": whole minutes, rounded up, so the citizen never comes back too early."""
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"


class Throttle(Protocol):
    def blocked_for(self, key: str) -> dt.timedelta | None: ...
    def reserve(self, key: str, budget: Budget) -> int:
        """Count one attempt and return the count, or raise TooManyAttempts (counting nothing)."""
    def release(self, key: str, budget: Budget) -> None:
        """Give back one reserved attempt that went well."""
    def reset(self, key: str) -> None: ...


def reserve_all(throttle: Throttle, limits: Sequence[Limit], reason: str | None = None) -> list[int]:
    """One attempt from every limit, or from none: TooManyAttempts with the longest wait. Keys are
    taken in one order (sorted), so two requests locking counter rows cannot deadlock."""
    taken: list[Limit] = []
    counts: dict[str, int] = {}
    for limit in sorted(limits, key=lambda limit: limit.key):
        try:
            counts[limit.key] = throttle.reserve(limit.key, limit.budget)
        except TooManyAttempts as refused:
            for done in taken:
                throttle.release(done.key, done.budget)
            waits = [refused.wait, *(w for other in limits if (w := throttle.blocked_for(other.key)))]
            raise TooManyAttempts(max(waits), reason or refused.reason) from None
        taken.append(limit)
    return [counts[limit.key] for limit in limits]


def _create_statement(insert: Any) -> Any:
    return insert(ThrottleCounter).on_conflict_do_nothing()


_CREATE = {True: _create_statement(postgresql.insert), False: _create_statement(sqlite.insert)}


class DatabaseThrottle:
    """The counter row is created if missing (INSERT … ON CONFLICT DO NOTHING, so two first attempts
    cannot both insert) and then locked (SELECT … FOR UPDATE) until the caller commits; on SQLite,
    BEGIN IMMEDIATE already serialises writers."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def blocked_for(self, key: str) -> dt.timedelta | None:
        counter = self.session.get(ThrottleCounter, key)
        now = utcnow()
        if counter is None or counter.blocked_until is None or counter.blocked_until <= now:
            return None
        return counter.blocked_until - now

    def reserve(self, key: str, budget: Budget) -> int:
        counter = self._locked(key)
        now = utcnow()  # once the lock is held: the holder before may have started a wait
        if counter.blocked_until is not None and counter.blocked_until > now:
            raise TooManyAttempts(counter.blocked_until - now)
        if counter.window_started_at + budget.window <= now:
            counter.failures = 0
        counter.failures += 1
        counter.window_started_at = now  # the window runs from the latest attempt
        wait = budget.wait_after(counter.failures)
        counter.blocked_until = now + wait if wait else None
        self.session.flush()
        return counter.failures

    def release(self, key: str, budget: Budget) -> None:
        counter = self.session.get(ThrottleCounter, key, with_for_update=True, populate_existing=True)
        if counter is None or counter.failures <= 0:
            return
        counter.failures -= 1
        if not budget.wait_after(counter.failures):
            counter.blocked_until = None
        self.session.flush()

    def reset(self, key: str) -> None:
        # Zeroed, not deleted: a reservation racing this one finds the row it just saw exist.
        counter = self.session.get(ThrottleCounter, key, with_for_update=True, populate_existing=True)
        if counter is not None:
            counter.failures, counter.blocked_until = 0, None
            self.session.flush()

    def _locked(self, key: str) -> ThrottleCounter:
        statement = _CREATE[self.session.get_bind().dialect.name == "postgresql"]
        run(self.session, statement, {"key": key, "failures": 0, "window_started_at": utcnow(), "blocked_until": None})
        counter = self.session.get(ThrottleCounter, key, with_for_update=True, populate_existing=True)
        assert counter is not None  # just created, or already there
        return counter


# KEYS: count, block. ARGV: free, window, first wait, max wait (ms). Returns {1, count} or {0, wait ms}.
_RESERVE = """
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then return {0, blocked} end
local attempts = redis.call('INCR', KEYS[1])
local free, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait = 0
if attempts >= free then
  wait = math.floor(math.min(tonumber(ARGV[3]) * 2 ^ math.min(attempts - free, 10), tonumber(ARGV[4])))
  redis.call('SET', KEYS[2], 1, 'PX', wait)
end
redis.call('PEXPIRE', KEYS[1], math.max(window, wait))
return {1, attempts}
"""
# KEYS: count, block. ARGV: free.
_RELEASE = """
local attempts = tonumber(redis.call('GET', KEYS[1]) or '0')
if attempts <= 0 then return 0 end
attempts = redis.call('DECR', KEYS[1])
if attempts < tonumber(ARGV[1]) then redis.call('DEL', KEYS[2]) end
return attempts
"""


def _ms(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() * 1000)


class RedisThrottle:
    """The same policy in Redis: a count per key expiring a window after the latest attempt, a
    block key expiring with the wait; each reservation one script, so atomic."""

    def __init__(self, client: Any) -> None:
        self.redis = client

    def blocked_for(self, key: str) -> dt.timedelta | None:
        ttl = self.redis.pttl(f"throttle:block:{key}")
        return dt.timedelta(milliseconds=ttl) if ttl and ttl > 0 else None

    def reserve(self, key: str, budget: Budget) -> int:
        allowed, value = self.redis.eval(_RESERVE, 2, *self._keys(key), budget.free, _ms(budget.window),
                                         _ms(budget.first_wait), _ms(budget.max_wait))
        if not allowed:
            raise TooManyAttempts(dt.timedelta(milliseconds=int(value)))
        return int(value)

    def release(self, key: str, budget: Budget) -> None:
        self.redis.eval(_RELEASE, 2, *self._keys(key), budget.free)

    def reset(self, key: str) -> None:
        self.redis.delete(*self._keys(key))

    @staticmethod
    def _keys(key: str) -> tuple[str, str]:
        return f"throttle:count:{key}", f"throttle:block:{key}"


class FallbackThrottle:
    """Redis first; if Redis cannot be reached, the database (documented in README "Operating").
    While Redis is away the database keeps its own counts, so an outage can add the database's
    budget to what Redis had counted, never more."""

    def __init__(self, primary: Throttle, fallback: Throttle, errors: tuple[type[BaseException], ...]) -> None:
        self.primary, self.fallback, self.errors = primary, fallback, errors

    def blocked_for(self, key: str) -> dt.timedelta | None:
        try:
            return self.primary.blocked_for(key)
        except self.errors:
            return self.fallback.blocked_for(key)

    def reserve(self, key: str, budget: Budget) -> int:
        try:
            return self.primary.reserve(key, budget)
        except self.errors:
            return self.fallback.reserve(key, budget)

    def release(self, key: str, budget: Budget) -> None:
        try:
            self.primary.release(key, budget)
        except self.errors:
            self.fallback.release(key, budget)

    def reset(self, key: str) -> None:
        try:
            self.primary.reset(key)
        except self.errors:
            self.fallback.reset(key)
