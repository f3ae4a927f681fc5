"""Liveness, readiness and metrics for load balancers and monitoring (operations.md "Production and scale").

* ``/healthz``: the process answers; touches nothing else, so a database outage never gets
  healthy nodes restarted.
* ``/readyz``: this node can serve: the database answers, the signing keys load and decrypt,
  and the schema is at (or, during a rolling upgrade, ahead of) this release's migrations.
* ``/metrics``: Prometheus text format (``idp.metrics``). Route it to the monitoring network
  only; the load balancer should not publish it.
"""

from __future__ import annotations

import functools
import logging

from alembic.script import ScriptDirectory
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from idp.services import db, services
from store.migrate import alembic_config

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Response:
    return _no_store(jsonify(status="ok"))


@bp.get("/readyz")
def readyz() -> Response:
    checks = {"database": "ok", "keys": "unchecked", "migrations": "unchecked"}
    try:
        session = db()
        session.execute(text("SELECT 1"))
        checks["keys"] = _keys_state(session)
        checks["migrations"] = migration_state(session)
    except DBAPIError as error:
        log.warning("readiness: database unavailable: %s", type(error.orig).__name__)
        checks["database"] = "unavailable"
    ready = checks["database"] == checks["keys"] == "ok" and checks["migrations"] in {"current", "ahead"}
    response = jsonify(status="ready" if ready else "not ready", checks=checks)
    response.status_code = 200 if ready else 503
    return _no_store(response)


@bp.get("/metrics")
def metrics() -> Response:
    return current_app.extensions["idp_metrics"].render()  # type: ignore[no-any-return]


def _keys_state(session: Session) -> str:
    """A current ES256 key and a current ledger key exist, and decrypt with this node's KEK."""
    try:
        services().keyring.signing_key(session, "ES256")
        services().keyring.ledger_signing_key(session)
    except DBAPIError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure here means "cannot sign"
        log.warning("readiness: signing keys unusable: %s", type(error).__name__)
        return "unusable"
    return "ok"


def migration_state(session: Session) -> str:
    """``current`` at this release's heads; ``ahead`` when a newer release already migrated
    (migrations stay compatible with the previous release, so that is fine); else ``behind``."""
    known, heads = _revisions(services().settings.database_url)
    if not inspect(session.connection()).has_table("alembic_version"):
        return "behind"  # never migrated
    applied = set(session.scalars(text("SELECT version_num FROM alembic_version")))
    if applied == heads:
        return "current"
    return "ahead" if applied - known else "behind"


@functools.cache
def _revisions(database_url: str) -> tuple[frozenset[str], frozenset[str]]:
    scripts = ScriptDirectory.from_config(alembic_config(database_url))
    known = frozenset(revision.revision for revision in scripts.walk_revisions())
    return known, frozenset(scripts.get_heads())


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
