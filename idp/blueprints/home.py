"""The start page: who is signed in, and links to the rest of the service."""

from __future__ import annotations

from flask import Blueprint, render_template

from idp.login_sessions import current_session

bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> str:
    login = current_session()
    return render_template("home/index.html", account=login.account if login else None)
