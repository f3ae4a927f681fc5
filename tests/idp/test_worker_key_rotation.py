"""The worker's key-rotation job honours ``IDP_KEY_ROTATION_DAYS=0`` (README: only by hand)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.config import Settings
from idp.worker import rotate_keys_if_due
from keys.models import SigningKey
from store.db import utcnow


def test_with_rotation_days_0_the_worker_never_rotates_however_old_the_keys(
        app: Flask, db_session: Session, tmp_path: Path) -> None:
    """README: ``IDP_KEY_ROTATION_DAYS=0`` leaves rotation to ``idp keys rotate``."""
    services = app.extensions["idp"]
    by_hand = Settings.from_env({"IDP_KEY_ROTATION_DAYS": "0", "IDP_INSTANCE_PATH": str(tmp_path)},
                                database_url=services.settings.database_url)
    ancient = utcnow() - dt.timedelta(days=3650)
    db_session.execute(update(SigningKey).values(activated_at=ancient, created_at=ancient))
    db_session.commit()
    before = {row.kid: row.state for row in db_session.scalars(select(SigningKey))}
    rotate_keys_if_due(dataclasses.replace(services, settings=by_hand))
    db_session.expire_all()
    assert {row.kid: row.state for row in db_session.scalars(select(SigningKey))} == before
