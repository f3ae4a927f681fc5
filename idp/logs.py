"""Structured JSON logs with a request id, and a safety net that keeps secrets out of them.

Every line on stderr is one JSON object: ``time``, ``level``, ``logger``, ``message``,
``request_id`` (inside a request) and any ``extra`` fields. Each request ends with one
``idp.access`` line carrying the path **without** its query string (codes, states and
hints travel there), and with every path part that is a secret — a route variable declared
``<secret:…>``, such as an emailed invitation or handover link — shown as ``[redacted]``:
one rule, by route, for the application's line and gunicorn's (``LOGGED_PATH``). Callers
never log secrets in the first place; :func:`redact` is the second line of defence for what
slips through (security.md "Secrets and data").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter, Rule

REQUEST_ID_HEADER = "X-Request-Id"
LOGGED_PATH = "idp.logged_path"  # the WSGI environ key: the path as access logs may show it
REDACTED = "[redacted]"
_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")  # werkzeug's rule syntax
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")  # an LB's id, if sane; never log-injectable

_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_AUTHORIZATION = re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+")
_SENSITIVE_PARAMS = (
    "code|state|nonce|token|access_token|refresh_token|id_token|id_token_hint|login_hint|client_secret"
    "|client_assertion|code_verifier|code_challenge|password|interaction|registration_access_token"
)
_PARAM = re.compile(rf"(?i)\b({_SENSITIVE_PARAMS})=[^&\s\"']*")
_ITEM = re.compile(rf"""(?i)(['"](?:{_SENSITIVE_PARAMS})['"]\s*:\s*['"])[^'"]*""")  # a dict's repr or JSON

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}


def redact(text: str) -> str:
    text = _JWT.sub("[jwt]", text)
    text = _AUTHORIZATION.sub(r"\1 [redacted]", text)
    text = _PARAM.sub(r"\1=[redacted]", text)
    text = _ITEM.sub(r"\1[redacted]", text)
    return _EMAIL.sub("[email]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; strings are passed through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or _current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, separators=(",", ":"))


def _current_request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


def configure_logging(level: str) -> None:
    """Send every logger's records to stderr as JSON (once per process)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(handler, "_idp_json", False) for handler in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler._idp_json = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # The development server's own request lines repeat ours, with the query string.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Libraries that log what we must not, whatever IDP_LOG_LEVEL says: SQLAlchemy result rows
    # (personal data) and Authlib's "Issue token {...}" (tokens) at DEBUG.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    logging.getLogger("authlib").setLevel(logging.INFO)


access_log = logging.getLogger("idp.access")


def request_id(given: str | None) -> str:
    """The load balancer's id when it is sane, else a new one (an id, not a secret)."""
    return given if given and _REQUEST_ID.match(given) else f"{random.getrandbits(64):016x}"


class SecretConverter(BaseConverter):
    """``<secret:token>``: a path part that is a one-time secret; access logs show ``[redacted]``."""


# A path segment of 20 or more URL-safe characters: every link secret we issue is one (or ends one).
_SECRET_LIKE = re.compile(r"[A-Za-z0-9_-]{20,}")


def logged_path() -> str:
    """The request's path with each ``<secret:…>`` variable of its route redacted."""
    matched = _route()
    if matched is None:  # no route (a stray slash, another case): redact what looks like a secret
        return _SECRET_LIKE.sub(REDACTED, request.path)
    if "<secret:" not in matched[0].rule:
        return request.path
    rule, values = matched
    return _VARIABLE.sub(lambda part: REDACTED if part["converter"] == "secret" else str(values[part["name"]]),
                         rule.rule)


def _route() -> tuple[Rule, Mapping[str, Any]] | None:
    """The matched rule and its values; for a method the route does not allow (405), the rule the
    path would match, so a secret in the path of a refused request is redacted too."""
    if request.url_rule is not None:
        return request.url_rule, request.view_args or {}
    refused = request.routing_exception
    if not isinstance(refused, MethodNotAllowed) or not refused.valid_methods:
        return None
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        rule, values = adapter.match(method=next(iter(refused.valid_methods)), return_rule=True)
    except HTTPException:  # e.g. a redirect to add a trailing slash: no variables to redact
        return None
    return rule, values


def start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id(request.headers.get(REQUEST_ID_HEADER))
    request.environ[LOGGED_PATH] = logged_path()


def log_request(request_id: str, method: str, path: str, endpoint: str | None, status: int, seconds: float) -> None:
    if access_log.isEnabledFor(logging.INFO):
        access_log.info("request", extra={
            "request_id": request_id, "method": method, "path": path, "endpoint": endpoint, "status": status,
            "duration_ms": round(seconds * 1000, 2),
        })


def finish_request(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    path = request.environ.get(LOGGED_PATH) or logged_path()
    log_request(g.get("request_id", ""), request.method, path, request.endpoint, response.status_code,
                request_duration())
    return response


def request_duration() -> float:
    started: float = g.get("request_started", time.perf_counter())
    return time.perf_counter() - started


def init_request_logging(app: Flask) -> None:
    """Registered first, so the request id exists before any other hook can log or fail (and before
    any route, so routes can declare ``<secret:…>`` variables)."""
    app.url_map.converters["secret"] = SecretConverter
    app.before_request(start_request)
    app.after_request(finish_request)
