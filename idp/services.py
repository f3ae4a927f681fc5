"""The per-app services (settings, database, keyring), reachable from any request.

Built once by :func:`idp.app.create_app` and stored on ``app.extensions``; views reach
them through :func:`services` and the request-scoped database session through :func:`db`.
"""

from __future__ import annotations

import dataclasses

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from idp.config import Settings
from keys.keyring import Keyring


@dataclasses.dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keyring: Keyring
    discovery_document: bytes  # precomputed: discovery is a hot path


def services() -> Services:
    return current_app.extensions["idp"]  # type: ignore[no-any-return]


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = services().sessions()
    return g.db  # type: ignore[no-any-return]


def close_db(_error: BaseException | None = None) -> None:
    session: Session | None = g.pop("db", None)
    if session is not None:
        session.rollback()
        session.close()
