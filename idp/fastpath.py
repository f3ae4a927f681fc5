"""Discovery and the JWKS, answered in front of Flask from precomputed bytes (operations.md
"Performance": the two documents every relying party fetches, and the cheapest to serve).

The body and its ETag are computed once (discovery: at start-up; JWKS: once per key snapshot,
so a rotation is served within ``IDP_KEY_CACHE_SECONDS``). Each answer carries what a Flask
answer carries: ``ETag`` / ``304``, ``Cache-Control``, CORS, the security headers, a request
id, an access-log line and the request metrics. Anything else — another method, a query
string, a database error while the key snapshot reloads — goes to Flask as usual.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from sqlalchemy.exc import DBAPIError

from idp.logs import REQUEST_ID_HEADER, log_request, request_id
from idp.metrics import count_request
from idp.security import security_headers
from idp.services import Services

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
DISCOVERY_PATHS = frozenset({"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"})
JWKS_PATH = "/jwks.json"
DISCOVERY_MAX_AGE = 3600


def etag_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


class DocumentFastPath:
    def __init__(self, app: Flask, wrapped: WSGIApp) -> None:
        self._wrapped = wrapped
        self._services: Services = app.extensions["idp"]
        settings = self._services.settings
        self._discovery = (self._services.discovery_document, etag_of(self._services.discovery_document))
        self._jwks_max_age = max(settings.key_cache_seconds, 60)
        self._headers = [("Access-Control-Allow-Origin", "*"), *security_headers(settings.issuer)]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD") or environ.get("QUERY_STRING") or \
                (path not in DISCOVERY_PATHS and path != JWKS_PATH):
            return self._wrapped(environ, start_response)
        started = time.perf_counter()
        try:
            body, etag, max_age, endpoint = self._document(path)
        except DBAPIError:
            return self._wrapped(environ, start_response)  # Flask answers 503
        quoted = f'"{etag}"'
        matched = quoted in environ.get("HTTP_IF_NONE_MATCH", "")
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        headers = [("ETag", quoted), ("Cache-Control", f"public, max-age={max_age}"), *self._headers,
                   (REQUEST_ID_HEADER, rid)]
        if matched:
            start_response("304 NOT MODIFIED", headers)
        else:
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                      *headers])
        status, seconds = (304 if matched else 200), time.perf_counter() - started
        count_request(endpoint, method, status, seconds)
        log_request(rid, method, path, endpoint, status, seconds)
        return [] if matched or method == "HEAD" else [body]

    def _document(self, path: str) -> tuple[bytes, str, int, str]:
        if path in DISCOVERY_PATHS:
            return *self._discovery, DISCOVERY_MAX_AGE, "discovery.configuration"
        with self._services.sessions() as session:  # used only when the key snapshot is stale
            body, etag = self._services.keyring.jwks_document(session)
        return body, etag, self._jwks_max_age, "discovery.jwks"
