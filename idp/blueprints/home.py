"""The start page: who is signed in, and links to the rest of the service."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template
from flask.typing import ResponseReturnValue

from idp.blueprints.delegation import pending_invitation
from idp.login_sessions import current_session

bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    login = current_session()
    if login is not None and (invitation := pending_invitation()):  # delegation.md "Accept": after sign-in
        return redirect(invitation)
    return render_template("home/index.html", account=login.account if login else None)
