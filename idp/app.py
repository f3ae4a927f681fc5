"""The Flask application factory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from idp.blueprints import (
    account,
    acting,
    authorize,
    consent,
    delegation,
    dev,
    discovery,
    health,
    home,
    logout,
    passkeys,
    protocol,
    recovery,
    registration,
    signin,
    signup,
    young_people,
)
from idp.blueprints import ledger as ledger_api
from idp.blueprints import openapi as openapi_description
from idp.blueprints import services as connected_services
from idp.blueprints.discovery import provider_metadata
from idp.blueprints.logout import EndSessionEndpoint
from idp.config import Settings
from idp.errors import register_error_handlers
from idp.fastpath import DocumentFastPath
from idp.forms import init_forms
from idp.json_input import StrictJSONProvider
from idp.login_sessions import FLOW_COOKIE_NAME, apply_session_cookie, cookie_name
from idp.logs import configure_logging, init_request_logging
from idp.metrics import init_metrics
from idp.oauth.server import create_authorization_server
from idp.security import init_security
from idp.services import Services, close_db
from idp.session_keys import session_info
from keys.encryption import KeyEncryptor
from keys.keyring import Keyring
from store.db import make_engine, make_reading_sessionmaker, make_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 64 * 1024


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "idp" / "static"))
    app.json = StrictJSONProvider(app)  # every request.get_json parses strictly (idp.json_input)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        SESSION_COOKIE_NAME=cookie_name(FLOW_COOKIE_NAME, settings.issuer),  # __Host- over https
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.issuer.startswith("https:"),
    )
    configure_logging(settings.log_level)
    init_request_logging(app)  # first: every later hook can log with the request id
    app.extensions["idp"] = services or build_services(settings)
    authlib_server = create_authorization_server()
    authlib_server.register_endpoint(EndSessionEndpoint)
    app.extensions["authlib"] = authlib_server
    for module in (home, discovery, authorize, signin, consent, protocol, logout, registration, health, signup,
                   recovery, account, passkeys):
        app.register_blueprint(module.bp)
    for module in (ledger_api, connected_services):  # consent-ledger.md
        app.register_blueprint(module.bp)
    for module in (acting, delegation, young_people):  # delegation.md
        app.register_blueprint(module.bp)
    app.register_blueprint(openapi_description.bp)  # the JSON endpoints' description
    if not settings.is_production:
        app.register_blueprint(dev.bp)
    init_metrics(app, app.extensions["idp"].sessions, settings.metrics_dir)
    app.wsgi_app = DocumentFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    if settings.proxy_hops:  # trust exactly this many proxies' X-Forwarded-For/-Proto
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    init_security(app)
    init_forms(app)  # after the CSRF check: only a checked form claims its token
    app.after_request(apply_session_cookie)
    app.teardown_appcontext(close_db)
    register_error_handlers(app)
    return app


def build_services(settings: Settings) -> Services:
    engine = make_engine(settings.database_url)
    keyring = Keyring(KeyEncryptor(settings.key_encryption_key), cache_seconds=settings.key_cache_seconds)
    document = json.dumps(provider_metadata(settings), separators=(",", ":")).encode()
    sessions = make_sessionmaker(engine, info=session_info(settings.key_encryption_key))
    return Services(settings=settings, engine=engine, sessions=sessions, keyring=keyring,
                    discovery_document=document, redis=_redis(settings),
                    reading_sessions=make_reading_sessionmaker(engine))


def _redis(settings: Settings) -> Any:
    if not settings.redis_url:
        return None
    return redis.Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
