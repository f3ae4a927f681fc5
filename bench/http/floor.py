"""The stack's floor: what this machine serves through the same gunicorn settings when the
application does only the irreducible part of a case, so each figure of ``run.py`` can be read
against what the chosen stack (gunicorn, Flask, PyJWT, SQLAlchemy + psycopg on PostgreSQL)
allows here at all. ``run.py --floor`` serves this module and drives each path with wrk:

* ``/wsgi`` — a bare WSGI callable returning fixed bytes: gunicorn's own ceiling;
* ``/flask`` — a Flask view returning fixed JSON: what Flask itself adds (discovery and the JWKS
  are answered in front of Flask, so bare WSGI is their floor);
* ``/verify+select`` — verify one ES256 JWT with PyJWT, then one primary-key SELECT (autocommit:
  a single round trip): the least a userinfo or introspection answer needs (the token must be
  checked against the database, so a revocation takes effect at once);
* ``/token-work`` — verify one ES256 JWT (the client assertion), sign two (access and ID token),
  and run 12 statements in one transaction: the token grant's count on PostgreSQL, without the
  ORM, Authlib, the ledger's hashing or any logic between them.

Not an application: no logs, no metrics, no error handling beyond a 500.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response
from sqlalchemy import bindparam, text

from store.db import make_engine

DATABASE_URL = os.environ.get("BENCH_FLOOR_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_http")
STATEMENTS_IN_A_TOKEN_GRANT = 12
FIXED = b'{"ok":true}'

_key = ec.generate_private_key(ec.SECP256R1())
_claims = {"iss": "https://idp.bench.test", "aud": "https://idp.bench.test/userinfo", "sub": "s" * 43,
           "client_id": "c" * 22, "scope": "openid profile email", "jti": "j" * 43}
_engine = make_engine(DATABASE_URL)
_reads = _engine.execution_options(isolation_level="AUTOCOMMIT")  # one statement: no BEGIN, no COMMIT
# A primary-key lookup in the migrated benchmark database (no row: the cost is the round trip).
_select_one = text("SELECT scope FROM access_tokens WHERE jti = :key").bindparams(bindparam("key"))

flask_app = Flask(__name__)


def _signed(**extra: Any) -> str:
    now = int(time.time())
    return jwt.encode(_claims | {"iat": now, "exp": now + 3600} | extra, _key, algorithm="ES256",
                      headers={"kid": "floor", "typ": "at+jwt"})


_token = _signed()


def _verify(token: str) -> dict[str, Any]:
    return jwt.decode(token, _key.public_key(), algorithms=["ES256"], audience=_claims["aud"], issuer=_claims["iss"])


@flask_app.get("/flask")
@flask_app.get("/readyz")
def fixed() -> Response:
    return Response(FIXED, content_type="application/json")


@flask_app.get("/verify+select")
def verify_and_select() -> Response:
    claims = _verify(_token)
    with _reads.connect() as connection:
        connection.execute(_select_one, {"key": claims["jti"]}).first()
    return Response(FIXED, content_type="application/json")


@flask_app.get("/token-work")
def token_work() -> Response:
    claims = _verify(_token)
    with _engine.begin() as connection:
        for _ in range(STATEMENTS_IN_A_TOKEN_GRANT):
            connection.execute(_select_one, {"key": claims["jti"]}).first()
    tokens = [_signed(), _signed(nonce="n")]
    return Response(b'{"n":%d}' % len(tokens), content_type="application/json")


def app(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO") == "/wsgi":
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(FIXED)))])
        return [FIXED]
    return flask_app(environ, start_response)
