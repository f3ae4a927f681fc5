"""The hot paths stay cheap (operations.md "Performance"): discovery and the JWKS from
precomputed bytes with ETag and Cache-Control, and signing keys parsed once per process."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event

from idp.services import Services
from keys import cache, keyring


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/jwks.json"])
def test_documents_carry_an_etag_and_answer_304_when_unchanged(client: FlaskClient, path: str) -> None:
    first = client.get(path)
    assert first.status_code == 200 and first.headers["Content-Type"] == "application/json"
    assert first.headers["Cache-Control"].startswith("public, max-age=")
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert first.headers["X-Content-Type-Options"] == "nosniff" and first.headers["X-Request-Id"]
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert client.head(path).headers["Content-Length"] == str(len(first.data))


def test_the_jwks_bytes_are_the_published_keys(app: Flask, client: FlaskClient) -> None:
    services: Services = app.extensions["idp"]
    with services.sessions() as session:
        expected = services.keyring.jwks(session)
    assert json.loads(client.get("/jwks.json").data) == expected


def test_a_fresh_key_snapshot_serves_the_jwks_without_the_database(client: FlaskClient, engine: Engine) -> None:
    client.get("/jwks.json")  # loads the snapshot
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/jwks.json").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == []


def test_signing_keys_are_decrypted_and_parsed_once(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    services: Services = app.extensions["idp"]
    cache.clear()
    decrypted, parsed = [], []
    decrypt, parse = services.keyring._encryptor.decrypt, keyring._parse_public_jwk
    monkeypatch.setattr(services.keyring._encryptor, "decrypt",
                        lambda *a, **k: decrypted.append(1) or decrypt(*a, **k))
    monkeypatch.setattr(keyring, "_parse_public_jwk", lambda *a: parsed.append(1) or parse(*a))
    issuer = services.settings.issuer
    with services.sessions() as session:
        tokens = [services.keyring.sign_jwt(session, {"iss": issuer, "iat": 1, "exp": 2**40}) for _ in range(5)]
        for token in tokens:
            services.keyring.verify_jwt(session, token, audience=None, issuer=issuer)
    assert (len(decrypted), len(parsed)) == (1, 1)
