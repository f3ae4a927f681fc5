"""The OpenAPI 3.1 description of every JSON endpoint, kept in the repository as idp/openapi.json."""

from __future__ import annotations

import functools
from pathlib import Path

from flask import Blueprint, Response

bp = Blueprint("openapi", __name__)

DESCRIPTION = Path(__file__).resolve().parent.parent / "openapi.json"


@functools.cache
def _document() -> bytes:
    return DESCRIPTION.read_bytes()


@bp.get("/openapi.json")
def openapi() -> Response:
    response = Response(_document(), mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
