"""A citizen's first visit, in Chromium with a virtual passkey authenticator (DevTools WebAuthn).

sign up → the code from the development outbox → details → add a passkey → sign out →
usernameless passkey sign-in for an agency asking ``acr_values=Cl.Cm`` → consent → the ID token
says ``acr`` ``Cl.Cm``. axe-core checks every page on the way (WCAG 2.2 AA).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.citizen import VirtualAuthenticator, add_passkey, emailed_code, on_heading, on_page, sign_out
from tests.browser.conftest import PASSWORD, LiveServer, browser_page
from tests.browser.relying_party import authorization_request, id_token_claims, returned_code


@pytest.fixture
def page(chromium: Browser, localhost_server: LiveServer) -> Iterator[Page]:
    with browser_page(chromium, localhost_server) as page:
        yield page


def sign_up(page: Page, email: str, arrive: Callable[[Page, str], None] = on_page) -> None:
    """Sign up with a password; ``arrive`` checks each page reached (by default with axe)."""
    page.goto("/signin")
    arrive(page, "Sign in")
    page.locator("#create-account").click()
    arrive(page, "Create your account")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue", exact=True).click()
    arrive(page, "Check your email")
    check_email = page.url

    code = emailed_code(page, email, arrive)
    page.goto(check_email)
    page.get_by_label("Security code").fill(code)
    page.get_by_role("button", name="Continue", exact=True).click()

    arrive(page, "Your details")
    page.get_by_label("First name").fill("Grace")
    page.get_by_label("Last name").fill("Hopper")
    page.get_by_label("With a password").check()
    page.get_by_label("Password", exact=True).fill(PASSWORD + " " + secrets.token_hex(4))
    page.get_by_role("button", name="Create account").click()
    arrive(page, "Your account has been created")


def test_sign_up_add_a_passkey_then_sign_in_with_it_alone_at_cl_cm(page: Page, localhost_server: LiveServer) -> None:
    server = localhost_server
    authenticator = VirtualAuthenticator.add(page)
    email = f"passkey-{secrets.token_hex(6)}@example.com"

    sign_up(page, email)
    add_passkey(page, authenticator)
    sign_out(page)

    request = authorization_request(server, acr_values="Cl.Cm")
    page.goto(request.url)
    on_page(page, "Sign in")
    page.locator("#passkey-signin").click()  # no email typed: the passkey names the account
    on_page(page, "Share your details with Browser Test Agency")
    page.get_by_role("button", name="Allow", exact=True).click()
    code = returned_code(server, page, request)

    claims = id_token_claims(server, code, request)
    assert claims["acr"] == "Cl.Cm", claims
    assert "pwd" not in claims["amr"], claims  # the passkey alone


def test_signing_up_works_without_javascript(chromium: Browser, live_server: LiveServer) -> None:
    with browser_page(chromium, live_server, java_script_enabled=False) as page:
        sign_up(page, f"no-script-{secrets.token_hex(6)}@example.com", arrive=on_heading)
        page.locator("#continue").click()
        expect(page.get_by_text("You are signed in as Grace Hopper")).to_be_visible()
        page.goto("/signin")  # the passkey ceremony alone needs script, and says so
        expect(page.locator("#passkey-signin")).to_be_hidden()
        # (DevTools' "script disabled" still parses <noscript> as text, so read the markup, not the screen.)
        assert "To use a passkey, turn on JavaScript in your browser." in page.locator("noscript").inner_text()
