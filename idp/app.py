"""The Flask application factory."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from flask import Flask

from idp.blueprints import authorize, consent, discovery, home, logout, protocol, registration, signin
from idp.blueprints.discovery import provider_metadata
from idp.blueprints.logout import EndSessionEndpoint
from idp.config import Settings
from idp.db import make_engine, make_sessionmaker
from idp.errors import register_error_handlers
from idp.login_sessions import apply_session_cookie
from idp.oauth.server import create_authorization_server
from idp.security import init_security
from idp.services import Services, close_db
from keys.encryption import KeyEncryptor
from keys.keyring import Keyring

ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 64 * 1024


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "idp" / "static"))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        SESSION_COOKIE_NAME="idp_flow",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.issuer.startswith("https:"),
    )
    logging.basicConfig(level=settings.log_level)
    app.extensions["idp"] = services or build_services(settings)
    authlib_server = create_authorization_server()
    authlib_server.register_endpoint(EndSessionEndpoint)
    app.extensions["authlib"] = authlib_server
    for module in (home, discovery, authorize, signin, consent, protocol, logout, registration):
        app.register_blueprint(module.bp)
    init_security(app)
    app.after_request(apply_session_cookie)
    app.teardown_appcontext(close_db)
    register_error_handlers(app)
    return app


def build_services(settings: Settings) -> Services:
    engine = make_engine(settings.database_url)
    keyring = Keyring(KeyEncryptor(settings.key_encryption_key), cache_seconds=settings.key_cache_seconds)
    document = json.dumps(provider_metadata(settings), separators=(",", ":")).encode()
    return Services(settings=settings, engine=engine, sessions=make_sessionmaker(engine), keyring=keyring,
                    discovery_document=document)
