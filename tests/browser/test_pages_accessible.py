"""Every page of today's sign-in flow in Chromium, each checked by axe-core (WCAG 2.2 AA).

authorize → sign in (wrong password, then right) → consent → back to the service → the
signed-in start page → sign out; then the authorize error page and the logout confirmation.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.browser.axe import assert_accessible
from tests.browser.citizen import assert_error_summary_links_to_fields, sign_in
from tests.browser.conftest import PASSWORD, LiveServer, browser_page
from tests.browser.relying_party import authorization_request, returned_code

SHOTS = Path("/tmp/shots")


def screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_sign_in_consent_and_sign_out_pages_have_no_accessibility_violations(page: Page,
                                                                              live_server: LiveServer) -> None:
    email = live_server.create_citizen()
    request = authorization_request(live_server)

    page.goto(request.url)
    expect(page).to_have_title("Sign in – Public Services Sign-in")
    expect(page.locator("body")).to_have_class("govuk-template__body js-enabled govuk-frontend-supported")
    expect(page.locator("#passkey-signin")).to_be_visible()  # shown by passkeys.js where WebAuthn works
    expect(page.locator("#passkey-error")).to_be_hidden()  # [hidden] wins over .govuk-error-message (app.css)
    assert_accessible(page)
    screenshot(page, "signin")

    sign_in(page, email, "not the password")
    expect(page).to_have_title("Error: Sign in – Public Services Sign-in")
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_be_focused()  # GOV.UK Frontend's script moves focus to the summary
    expect(page.locator("#email")).to_have_attribute("aria-describedby", "email-error")
    expect(page.locator("#email")).to_have_class("govuk-input govuk-input--error")
    expect(page.locator("#password")).to_have_value("")  # never echoed back
    assert_error_summary_links_to_fields(page)
    assert_accessible(page)
    screenshot(page, "signin-error")
    summary.get_by_role("link").click()
    expect(page.locator("#email")).to_be_focused()

    sign_in(page, email, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Share your details with Browser Test Agency")
    assert_accessible(page)
    screenshot(page, "consent")

    page.get_by_role("button", name="Allow", exact=True).click()
    returned_code(live_server, page, request)

    page.goto("/")
    expect(page.get_by_text("You are signed in as")).to_be_visible()
    assert_accessible(page)

    page.get_by_role("link", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign out")
    assert_accessible(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You have signed out")
    assert_accessible(page)


def test_choosing_an_account_has_no_accessibility_violations(page: Page, live_server: LiveServer) -> None:
    email = live_server.create_citizen()
    page.goto("/signin")
    sign_in(page, email, PASSWORD)
    page.goto(authorization_request(live_server, prompt="select_account").url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Which account do you want to use?")
    assert_accessible(page)


def test_authorize_error_page_has_no_accessibility_violations(page: Page, live_server: LiveServer) -> None:
    response = page.goto(f"{live_server.url}/authorize?client_id=unknown&response_type=code&scope=openid")
    assert response is not None and response.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text("There is a problem with the service")
    assert_accessible(page)


def test_logout_pages_have_no_accessibility_violations(page: Page, live_server: LiveServer) -> None:
    page.goto(f"/logout?client_id={live_server.client_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Do you want to sign out?")
    assert_accessible(page)

    response = page.goto("/logout?id_token_hint=not-a-token")
    assert response is not None and response.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text("There is a problem signing you out")
    assert_accessible(page)


def test_the_govuk_font_and_images_load_from_the_static_route(page: Page) -> None:
    page.goto("/")
    assert_accessible(page)
    page.evaluate("document.fonts.ready")
    loaded = page.evaluate("[...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)")
    assert any("GDS Transport" in family for family in loaded), loaded
    crest = page.locator(".govuk-footer__copyright-logo")
    expect(crest).to_be_visible()  # its crest image comes from the stylesheet's url(), checked by PageProblems


def test_signing_in_and_consenting_work_without_javascript(chromium: Browser, live_server: LiveServer) -> None:
    with browser_page(chromium, live_server, java_script_enabled=False) as page:
        email = live_server.create_citizen()
        request = authorization_request(live_server)
        page.goto(request.url)
        expect(page.locator("body")).to_have_class("govuk-template__body")
        sign_in(page, email, PASSWORD)
        page.get_by_label("Your email address").uncheck()
        page.get_by_role("button", name="Allow", exact=True).click()
        returned_code(live_server, page, request)
