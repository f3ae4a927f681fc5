"""The per-app services (settings, database, keyring), reachable from any request.

Built once by :func:`idp.app.create_app` and stored on ``app.extensions``; views reach
them through :func:`services` and the request-scoped database session through :func:`db`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from flask import current_app, g
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from idp.config import Settings
from idp.throttle import DatabaseThrottle, FallbackThrottle, RedisThrottle, Throttle
from keys.keyring import Keyring


@dataclasses.dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keyring: Keyring
    discovery_document: bytes  # precomputed: discovery is a hot path
    redis: Any = None  # a redis.Redis when IDP_REDIS_URL is set
    reading_sessions: sessionmaker[Session] | None = None  # see reading_db(); None: ``sessions``


def services() -> Services:
    return current_app.extensions["idp"]  # type: ignore[no-any-return]


def throttle() -> Throttle:
    client = services().redis
    if client is None:
        return DatabaseThrottle(db())
    return FallbackThrottle(RedisThrottle(client), DatabaseThrottle(db()), (RedisError, OSError))


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = services().sessions()
    return g.db  # type: ignore[no-any-return]


def reading_db() -> Session:
    """The request's session for reading only (``store.db.make_reading_sessionmaker``): no
    transaction around its statements (on SQLite, no write lock). For requests that write nothing."""
    if "reading_db" not in g:
        g.reading_db = (services().reading_sessions or services().sessions)()
    return g.reading_db  # type: ignore[no-any-return]


def close_db(_error: BaseException | None = None) -> None:
    with contextlib.ExitStack() as cleanup:  # every session is closed, even if one rollback fails
        for name in ("db", "reading_db"):
            session: Session | None = g.pop(name, None)
            if session is not None:
                cleanup.callback(session.close)
                cleanup.callback(session.rollback)  # runs first (last in, first out)
