"""Browser tests: the app on a loopback port, driven by Debian's Chromium through Playwright.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``. Without it these
tests skip, unless ``REQUIRE_BROWSER=1`` (set by CI) turns the skip into a failure.
Every page is also watched for CSP violations, script errors and static files that fail to load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Request, Response, sync_playwright
from werkzeug.serving import BaseWSGIServer, make_server

from idp.accounts import create_account
from idp.app import build_services, create_app
from idp.config import Settings
from idp.outbound import DestinationPolicy
from idp.registry import ClientMetadata, create_agency, create_client
from idp.services import Services

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"
TIMEOUT_MS = 10_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Like test_e2e_http, these tests commit to the suite's database: run them after the
    tests that expect it to hold only their own rows (a stable sort keeps the rest in order)."""
    here = Path(__file__).parent
    items.sort(key=lambda item: item.path.is_relative_to(here))


def unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the provider, running ------------------------------------------------------------------

@dataclasses.dataclass
class LiveServer:
    url: str
    services: Services
    rp_url: str  # the relying party's base: never listened on, the browser's requests are answered by a route
    client_id: str

    @property
    def redirect_uri(self) -> str:
        return f"{self.rp_url}/cb"

    def create_citizen(self, given_name: str = "Ada", family_name: str = "Lovelace") -> str:
        email = f"browser-{secrets.token_hex(6)}@example.com"
        with self.services.sessions.begin() as session:
            create_account(session, email=email, given_name=given_name, family_name=family_name, password=PASSWORD)
        return email


def start_server(url_host: str, tmp_path: Path, database_url: str, settings: Settings) -> Iterator[LiveServer]:
    """The app on a free loopback port with its own issuer, sharing the suite's database and KEK
    (the keyring's private keys in that database are sealed with it)."""
    port, rp_port = free_port(), free_port()
    server_settings = Settings.from_env(
        environ={}, issuer=f"http://{url_host}:{port}", instance_path=tmp_path, database_url=database_url,
        key_cache_seconds=1, key_encryption_key=settings.key_encryption_key,
    )
    services = build_services(server_settings)
    rp_url = f"http://127.0.0.1:{rp_port}"
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        agency, _token = create_agency(session, "Browser Test Agency")
        client, _secret = create_client(session, agency, ClientMetadata(
            client_name="Browser Test Service", redirect_uris=[f"{rp_url}/cb"], token_endpoint_auth_method="none",
            post_logout_redirect_uris=[f"{rp_url}/signed-out"], scope="openid profile email",
        ), destinations=DestinationPolicy.from_settings(services.settings))
        client_id = client.client_id
    server = make_server("127.0.0.1", port, create_app(server_settings, services=services), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-idp", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=server_settings.issuer, services=services, rp_url=rp_url, client_id=client_id)
    finally:
        stop(server, thread)
        services.engine.dispose()


def stop(server: BaseWSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, database_url: str,
                settings: Settings) -> Iterator[LiveServer]:
    """Issuer ``http://127.0.0.1:<port>``."""
    yield from start_server("127.0.0.1", tmp_path_factory.mktemp("live"), database_url, settings)


@pytest.fixture(scope="session")
def localhost_server(tmp_path_factory: pytest.TempPathFactory, database_url: str,
                     settings: Settings) -> Iterator[LiveServer]:
    """Issuer ``http://localhost:<port>``, for passkeys: the RP ID is the issuer's host, and
    browsers refuse an IP address as an RP ID (WebAuthn L3 §5.1.3 step 8, "valid domain")."""
    yield from start_server("localhost", tmp_path_factory.mktemp("live-localhost"), database_url, settings)


# --- the browser ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        unavailable(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@dataclasses.dataclass
class PageProblems:
    """What a person would not see but that still breaks the page."""

    found: list[str] = dataclasses.field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", lambda message: self.on_console(message.type, message.text))
        page.on("pageerror", lambda error: self.found.append(f"script error: {error}"))
        page.on("response", self.on_response)
        page.on("requestfailed", self.on_request_failed)

    def on_console(self, kind: str, text: str) -> None:
        # The document's own 4xx (an error page) is expected; static files are checked by on_response.
        if kind == "error" and not text.startswith("Failed to load resource"):
            self.found.append(f"console error: {text}")

    def on_response(self, response: Response) -> None:
        if "/static/" in response.url and response.status >= 400:
            self.found.append(f"{response.status} for {response.url}")

    def on_request_failed(self, request: Request) -> None:
        # ERR_ABORTED: the page navigated away before the file arrived.
        if "/static/" in request.url and request.failure != "net::ERR_ABORTED":
            self.found.append(f"failed to load {request.url}: {request.failure}")


def open_context(chromium: Browser, server: LiveServer, **options: object) -> BrowserContext:
    context = chromium.new_context(base_url=server.url, viewport={"width": 1024, "height": 800}, **options)
    context.set_default_timeout(TIMEOUT_MS)
    # The relying party: answer its pages here, so the redirect back with the code can be read.
    context.route(f"{server.rp_url}/**", lambda route: route.fulfill(
        status=200, content_type="text/html",
        body='<!DOCTYPE html><html lang="en"><head><title>Relying party</title></head>'
             "<body><main><h1>Relying party</h1></main></body></html>",
    ))
    return context


@contextlib.contextmanager
def browser_page(chromium: Browser, server: LiveServer, **options: object) -> Iterator[Page]:
    """A fresh browser (no cookies) on the server; fails on CSP violations, script errors or
    static files that did not load."""
    problems = PageProblems()
    context = open_context(chromium, server, **options)
    try:
        page = context.new_page()
        problems.watch(page)
        yield page
    finally:
        context.close()
    assert not problems.found, "\n".join(problems.found)


@pytest.fixture
def page(chromium: Browser, live_server: LiveServer) -> Iterator[Page]:
    with browser_page(chromium, live_server) as page:
        yield page
