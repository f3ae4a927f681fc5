"""Single sign-on sessions: create on sign-in, load from the cookie, expire, end.

The cookie carries a random token (256 bits); the database keeps only its SHA-256, so a
database read does not reveal live session cookies. Every sign-in makes a new session id and a
new CSRF token (no fixation). Behind an https issuer the cookies are named ``__Host-…``
(RFC 6265bis §4.1.3.2: Secure, ``Path=/``, no ``Domain``), so no sibling host can plant or
overwrite them; over http in development browsers refuse that prefix, so the bare name is used.
"""

from __future__ import annotations

import datetime as dt
import secrets

from flask import Response, g, request
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from idp.backchannel import queue_session_logout
from idp.models import Account, AuthorizationCode, LoginSession, SessionParticipant, TokenFamily
from idp.security import rotate_csrf_token
from idp.services import db, services
from keys.digests import secret_digest
from store.db import run, utcnow

COOKIE_NAME = "idp_session"  # the browser sees session_cookie_name()
FLOW_COOKIE_NAME = "idp_flow"  # Flask's signed session: pending requests and the CSRF token


def cookie_name(name: str, issuer: str) -> str:
    """``__Host-`` + ``name`` when the issuer is https (see the module docstring)."""
    return f"__Host-{name}" if issuer.startswith("https:") else name


def session_cookie_name() -> str:
    return cookie_name(COOKIE_NAME, services().settings.issuer)


def start_session(account: Account, *, acr: str, amr: list[str]) -> str:
    """Sign the account in: end the browser's previous session and return the new cookie token."""
    end_current_session()
    rotate_csrf_token()
    settings = services().settings
    token = secrets.token_urlsafe(32)
    now = utcnow()
    login = LoginSession(
        id=secret_digest(token),
        sid=secrets.token_urlsafe(32),
        account_id=account.id,
        auth_time=now.replace(microsecond=0),
        acr=acr,
        amr=amr,
        created_at=now,
        last_active_at=now,
        expires_at=now + dt.timedelta(seconds=settings.session_absolute_ttl),
        user_agent=(request.user_agent.string or "")[:300],
        ip_prefix=_ip_prefix(request.remote_addr),
    )
    db().add(login)
    db().flush()
    g.login_session = login
    g.new_session_token = token
    return token


def step_up_session(login: LoginSession, *, acr: str, amr: list[str]) -> str:
    """The signed-in citizen added a factor (protocol.md "Assurance"): the browser gets a new
    session id (no fixation, sign-in.md "Sessions"), but the single sign-on session goes on. Its
    services keep their tokens and its ``sid`` (Back-Channel Logout 1.0 §2.1) and are not logged
    out; a later sign-out still reaches every one of them."""
    sid, old_id = login.sid, login.id
    login.ended_at = utcnow()
    login.sid = secrets.token_urlsafe(32)  # the ended row gives up the sid it no longer holds
    db().flush()
    g.login_session = None  # so start_session does not end, and log out, the session it continues
    token = start_session(login.account, acr=acr, amr=amr)
    new_id = g.login_session.id
    g.login_session.sid = sid
    for model in (SessionParticipant, TokenFamily, AuthorizationCode):
        db().execute(update(model).where(model.session_id == old_id).values(session_id=new_id)
                     .execution_options(synchronize_session=False))
    db().flush()
    return token


def current_session() -> LoginSession | None:
    """The live session of this browser, or None (expired idle/absolute, ended, account inactive)."""
    if "login_session" in g:
        return g.login_session  # type: ignore[no-any-return]
    token = request.cookies.get(session_cookie_name())
    g.login_session = _load(db(), token) if token else None
    return g.login_session  # type: ignore[no-any-return]


def _load(session: Session, token: str) -> LoginSession | None:
    login = session.get(LoginSession, secret_digest(token))
    if login is None or login.ended_at is not None or login.account.status != "active":
        return None
    now = utcnow()
    idle = dt.timedelta(seconds=services().settings.session_idle_ttl)
    if login.expires_at <= now or login.last_active_at + idle <= now:
        return None
    if now - login.last_active_at > dt.timedelta(seconds=60):  # keep writes off most requests
        login.last_active_at = now
    return login


def end_current_session() -> LoginSession | None:
    login = current_session()
    if login is not None:
        end_session(db(), login)
        g.login_session = None
        g.clear_session_cookie = True
        rotate_csrf_token()
    return login


def end_session(session: Session, login: LoginSession) -> None:
    """End a session and tell every client that took part in it (back-channel logout)."""
    if login.ended_at is None:
        login.ended_at = utcnow()
        queue_session_logout(session, login)


def live_sessions(session: Session, account_id: str) -> list[LoginSession]:
    """The account's sessions that have not ended or expired, newest first."""
    now = utcnow()
    idle = dt.timedelta(seconds=services().settings.session_idle_ttl)
    query = (select(LoginSession)
             .where(LoginSession.account_id == account_id, LoginSession.ended_at.is_(None),
                    LoginSession.expires_at > now, LoginSession.last_active_at > now - idle)
             .order_by(LoginSession.last_active_at.desc()))
    return list(session.scalars(query))


def record_participant(session: Session, login_session_id: str | None, client_id: str) -> None:
    """One statement: INSERT … ON CONFLICT DO NOTHING (the client may already have taken part)."""
    if login_session_id is None:
        return
    statement = _ADD_PARTICIPANT[session.get_bind().dialect.name == "postgresql"]
    run(session, statement, {"session_id": login_session_id, "client_id": client_id, "first_at": utcnow()})


_ADD_PARTICIPANT = {True: postgresql.insert(SessionParticipant).on_conflict_do_nothing(),
                    False: sqlite.insert(SessionParticipant).on_conflict_do_nothing()}


def apply_session_cookie(response: Response) -> Response:
    settings = services().settings
    secure = settings.issuer.startswith("https:")
    token = g.get("new_session_token")
    name = session_cookie_name()
    if token:
        response.set_cookie(
            name, token, httponly=True, samesite="Lax", secure=secure,
            max_age=settings.session_absolute_ttl, path="/",
        )
    elif g.get("clear_session_cookie"):
        response.delete_cookie(name, path="/", httponly=True, samesite="Lax", secure=secure)
    return response


def client_network() -> str | None:
    return _ip_prefix(request.remote_addr)


def _ip_prefix(address: str | None) -> str | None:
    """Keep only the network part of the address: enough for 'your sessions', not a tracker."""
    if not address:
        return None
    if ":" in address:
        return ":".join(address.split(":")[:3]) + "::/48"
    return ".".join(address.split(".")[:3]) + ".0/24"
