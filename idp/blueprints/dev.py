"""Development-only pages: the outbox, so emails can be read without an SMTP server.
Registered only when ``IDP_ENV`` is not production (see ``create_app``)."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from idp.outbox import pending
from idp.services import db

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.get("/outbox")
def outbox() -> str:
    recipient = request.args.get("to", "")[:320] or None
    return render_template("dev/outbox.html", messages=pending(db(), to=recipient), recipient=recipient or "")
