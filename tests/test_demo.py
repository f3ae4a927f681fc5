"""``idp demo``: idempotent seeding, and the example agency services signing in end to end.

The end-to-end tests run the provider and both demo relying parties on real loopback ports
and drive them with ``requests`` the way a browser would.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from idp.app import create_app
from idp.config import Settings
from idp.demo import CITIZENS, build_service, run_demo, seeded_services, state_path
from idp.models import Account, Agency, Client
from keys.models import SigningKey
from store.db import make_engine

ADA = CITIZENS[0]


def demo_settings(instance_path: Path, issuer: str = "http://127.0.0.1:5000") -> Settings:
    return Settings.from_env(environ={}, instance_path=instance_path, issuer=issuer)


def row_counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return {model.__tablename__: connection.scalar(select(func.count()).select_from(model)) or 0
                    for model in (Agency, Client, Account, SigningKey)}
    finally:
        engine.dispose()


# --- seeding ---------------------------------------------------------------------------------

def test_seeding_twice_creates_nothing_new(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path)
    run_demo(settings, host="127.0.0.1", port=5000, serve=False)
    first, counts = seeded_services(settings), row_counts(settings)
    run_demo(settings, host="127.0.0.1", port=5000, serve=False)

    assert row_counts(settings) == counts
    assert seeded_services(settings) == first
    assert counts["agencies"] == 2 and counts["clients"] == 2 and counts["accounts"] == 3  # + a child profile
    assert {service.port for service in first} == {5001, 5002}
    assert state_path(settings).stat().st_mode & 0o077 == 0  # it holds private keys


def test_seeding_recreates_only_what_is_missing(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path)
    run_demo(settings, host="127.0.0.1", port=5000, serve=False)
    transport, council = seeded_services(settings)
    engine = make_engine(settings.database_url)
    with engine.begin() as connection:
        connection.execute(Client.__table__.delete().where(Client.client_id == council.client_id))
    engine.dispose()

    run_demo(settings, host="127.0.0.1", port=5000, serve=False, service_ports=(5001, 5003))

    again_transport, again_council = seeded_services(settings)
    assert again_transport.client_id == transport.client_id
    assert again_council.agency_id == council.agency_id and again_council.client_id != council.client_id
    assert row_counts(settings)["clients"] == 2
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        uris = connection.scalar(select(Client.redirect_uris).where(Client.client_id == again_council.client_id))
    engine.dispose()
    assert uris == ["http://127.0.0.1:5003/callback"]


def test_registered_keys_are_public_halves(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path)
    run_demo(settings, host="127.0.0.1", port=5000, serve=False)
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        registered = {row.client_id: row.jwks for row in connection.execute(select(Client.client_id, Client.jwks))}
    engine.dispose()
    for service in seeded_services(settings):
        (key,) = registered[service.client_id]["keys"]
        assert "d" not in key and key["kty"] == "EC" and key["kid"] == service.private_jwk["kid"]
        assert "d" in service.private_jwk


# --- end to end ------------------------------------------------------------------------------

@dataclasses.dataclass
class RunningDemo:
    provider_url: str
    service_urls: tuple[str, str]


def _not_ready(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


@pytest.fixture
def running_demo(tmp_path: Path) -> Iterator[RunningDemo]:
    """Provider and both services on free ports: bound first, so the seeded URIs can name the ports."""
    from werkzeug.serving import make_server

    servers = [make_server("127.0.0.1", 0, _not_ready, threaded=True) for _ in range(3)]
    threads: list[threading.Thread] = []
    try:
        provider, service_a, service_b = servers
        settings = demo_settings(tmp_path, issuer=f"http://127.0.0.1:{provider.port}")
        run_demo(settings, host="127.0.0.1", port=provider.port, serve=False,
                 service_ports=(service_a.port, service_b.port))
        provider.app = create_app(settings)
        for server, service in zip((service_a, service_b), seeded_services(settings), strict=True):
            server.app = build_service(settings, service)
        for server in servers:
            threads.append(threading.Thread(target=server.serve_forever, daemon=True))
            threads[-1].start()
        yield RunningDemo(provider_url=settings.issuer,
                          service_urls=(f"http://127.0.0.1:{service_a.port}", f"http://127.0.0.1:{service_b.port}"))
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            thread.join(timeout=10)
        for server in servers:
            server.server_close()


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


class FormParser(HTMLParser):
    """The forms of a page: action, method and the fields a browser would submit by default."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"action": values.get("action", ""), "method": values.get("method", "get"),
                               "fields": [], "buttons": []})
        elif tag == "input" and self.forms and "name" in values:
            if values.get("type") in {"checkbox", "radio"} and "checked" not in values:
                return
            self.forms[-1]["fields"].append((values["name"], values.get("value", "")))
        elif tag == "button" and self.forms and "name" in values:
            self.forms[-1]["buttons"].append((values["name"], values.get("value", "")))


def only_form(response: requests.Response) -> dict[str, Any]:
    parser = FormParser()
    parser.feed(response.text)
    posted = [form for form in parser.forms if form["method"].lower() == "post"]
    assert len(posted) == 1, response.text
    return posted[0]


def submit(browser: requests.Session, page: requests.Response, extra: list[tuple[str, str]]) -> requests.Response:
    form = only_form(page)
    fields = [(name, value) for name, value in form["fields"] if name not in dict(extra)] + extra
    return browser.post(urljoin(page.url, form["action"]), data=fields, allow_redirects=True, timeout=30)


def path_of(response: requests.Response) -> str:
    return urlsplit(response.url).path


def shown(response: requests.Response, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', response.text)
    assert match, response.text
    return match.group(1)


def sign_in_password(browser: requests.Session, page: requests.Response) -> requests.Response:
    assert path_of(page) == "/signin", page.text
    form = only_form(page)
    assert {"csrf_token", "interaction"} <= {name for name, _ in form["fields"]}
    return submit(browser, page, [("email", ADA.email), ("password", ADA.password)])


def allow(browser: requests.Session, page: requests.Response) -> requests.Response:
    assert path_of(page).startswith("/consent/"), page.text
    scopes = [value for name, value in only_form(page)["fields"] if name == "scope"]
    assert {"profile", "email"} <= set(scopes)
    return submit(browser, page, [("decision", "allow")])


def assert_signed_in(page: requests.Response, service_url: str) -> str:
    assert page.status_code == 200, page.text
    assert page.url == service_url + "/"
    assert "Signed in to" in page.text
    assert shown(page, "given_name") == "Ada" and shown(page, "family_name") == "Lovelace"
    assert shown(page, "email") == ADA.email
    return shown(page, "sub")


def test_single_sign_on_across_two_agencies(running_demo: RunningDemo, browser: requests.Session) -> None:
    url_a, url_b = running_demo.service_urls
    page = browser.get(url_a + "/", timeout=30)
    assert "Sign in with Public Services Sign-in" in page.text

    page = browser.get(url_a + "/login", allow_redirects=True, timeout=30)
    page = allow(browser, sign_in_password(browser, page))
    sub_a = assert_signed_in(page, url_a)

    page = browser.get(url_b + "/login", allow_redirects=True, timeout=30)
    assert not any(path_of(step) == "/signin" for step in [*page.history, page])  # no second password
    page = allow(browser, page)
    sub_b = assert_signed_in(page, url_b)

    assert sub_a != sub_b  # pairwise: one subject per agency
    page = browser.get(url_a + "/login", allow_redirects=True, timeout=30)  # consented and signed in
    assert assert_signed_in(page, url_a) == sub_a


def test_sign_out_ends_both_sessions(running_demo: RunningDemo, browser: requests.Session) -> None:
    url_a, _ = running_demo.service_urls
    page = browser.get(url_a + "/login", allow_redirects=True, timeout=30)
    assert_signed_in(allow(browser, sign_in_password(browser, page)), url_a)

    page = browser.get(url_a + "/logout", allow_redirects=True, timeout=30)
    assert any(urlsplit(step.url).path == "/logout" and step.url.startswith(running_demo.provider_url)
               for step in page.history)
    assert page.url.startswith(url_a + "/") and path_of(page) == "/"  # with the logout state
    assert "Sign in with Public Services Sign-in" in page.text

    page = browser.get(url_a + "/login", allow_redirects=True, timeout=30)
    assert path_of(page) == "/signin"  # the provider's session ended too


def test_refused_consent_is_shown_as_an_error(running_demo: RunningDemo, browser: requests.Session) -> None:
    url_a, _ = running_demo.service_urls
    page = sign_in_password(browser, browser.get(url_a + "/login", allow_redirects=True, timeout=30))
    page = submit(browser, page, [("decision", "deny")])
    assert page.status_code == 400
    assert urlsplit(page.url).path == "/callback" and page.url.startswith(url_a)
    assert shown(page, "error") == "access_denied"


def test_callback_errors_do_not_crash(running_demo: RunningDemo, browser: requests.Session) -> None:
    url_a, _ = running_demo.service_urls
    page = browser.get(url_a + "/callback", params={"error": "server_error", "error_description": "<b>x</b>"},
                       timeout=30)
    assert page.status_code == 400 and "&lt;b&gt;x&lt;/b&gt;" in page.text
    page = browser.get(url_a + "/callback", params={"code": "forged", "state": "unknown"}, timeout=30)
    assert page.status_code == 400
