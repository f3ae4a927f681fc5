"""Every page carries the headers sign-in.md asks for; cookies are HttpOnly and SameSite."""

from __future__ import annotations

import dataclasses
import statistics
import time

import pytest
from flask.testing import FlaskClient

from idp.app import create_app
from idp.config import Settings
from idp.models import Account
from idp.services import Services
from tests.idp import flows

PAGES = ["/", "/signin", "/signup", "/recover", "/signout", "/logout", "/.well-known/openid-configuration",
         "/jwks.json", "/authorize?client_id=unknown"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_forbids_framing_and_inline_script(client: FlaskClient, path: str) -> None:
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_is_sent_outside_loopback(settings: Settings, base_services: Services) -> None:
    https = dataclasses.replace(settings, issuer="https://id.example.gov")
    app = create_app(https, services=dataclasses.replace(base_services, settings=https))
    assert "max-age=" in app.test_client().get("/").headers["Strict-Transport-Security"]


def test_session_cookies_are_httponly_and_samesite(client: FlaskClient, citizen: Account) -> None:
    cookies = flows.sign_in(client, citizen.email, "correct horse battery staple").headers.getlist("Set-Cookie")
    assert cookies and all("HttpOnly" in cookie and "SameSite=Lax" in cookie for cookie in cookies)


def test_unknown_and_known_emails_take_similar_time(client: FlaskClient, citizen: Account) -> None:
    """No user enumeration by timing: both paths pay for one argon2 verification."""

    def timed(email: str) -> float:
        token = flows.csrf_token(client)
        start = time.perf_counter()
        client.post("/signin", data={"email": email, "password": "wrong password!", "csrf_token": token})
        return time.perf_counter() - start

    # Interleaved, so a machine that gets busier during the test slows both paths alike.
    pairs = [(timed(citizen.email), timed("nobody-at-all@example.com")) for _ in range(9)]
    known, unknown = (statistics.median(column) for column in zip(*pairs, strict=True))
    assert 0.5 < known / unknown < 2.0
