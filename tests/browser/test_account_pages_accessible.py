"""The citizen's own pages, the forms' error states and the passkey step-up, each checked by axe-core.

A password citizen adds a passkey, visits every account page, signs out, and then an agency
asking ``acr_values=Cl.Cm`` gets it after the password plus the passkey (the step-up page).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.axe import assert_accessible
from tests.browser.citizen import (
    VirtualAuthenticator,
    add_passkey,
    assert_error_summary_links_to_fields,
    emailed_code,
    on_page,
    sign_in,
    sign_out,
)
from tests.browser.conftest import PASSWORD, LiveServer, browser_page
from tests.browser.relying_party import authorization_request, id_token_claims, returned_code

ACCOUNT_PAGES = [("/account", "Your account"), ("/account/password", "Change your password"),
                 ("/account/sessions", "Your sessions"), ("/account/connected-services", "Connected services"),
                 ("/account/record", "Your record"), ("/account/delete", "Delete your account")]


@pytest.fixture
def passkey_page(chromium: Browser, localhost_server: LiveServer) -> Iterator[Page]:
    with browser_page(chromium, localhost_server) as page:
        yield page


def visit_passkey_pages(page: Page) -> None:
    on_page(page, "Your passkeys")
    expect(page.get_by_role("alert")).to_contain_text("Your passkey has been added")
    page.get_by_role("link", name="Rename Virtual authenticator").click()
    on_page(page, "Rename your passkey")
    page.go_back()
    # With a passkey, a password session must use it before changing passkeys.
    page.get_by_role("link", name="use one of your passkeys first").click()
    on_page(page, "Use your passkey")
    page.locator("#passkey-verify").click()
    on_page(page, "Your passkeys")
    page.get_by_role("link", name="Remove Virtual authenticator").click()
    on_page(page, "Remove ‘Virtual authenticator’?")


def test_account_pages_and_a_passkey_step_up_to_cl_cm(passkey_page: Page, localhost_server: LiveServer) -> None:
    page, server = passkey_page, localhost_server
    authenticator = VirtualAuthenticator.add(page)
    email = server.create_citizen()
    page.goto("/signin")
    sign_in(page, email, PASSWORD)
    page.wait_for_url(f"{server.url}/")

    for path, heading in ACCOUNT_PAGES:
        page.goto(path)
        on_page(page, heading)
    page.goto("/passkeys")
    on_page(page, "Your passkeys")
    add_passkey(page, authenticator)
    visit_passkey_pages(page)
    sign_out(page)

    request = authorization_request(server, acr_values="Cl.Cm")
    page.goto(request.url)
    sign_in(page, email, PASSWORD)
    on_page(page, "Use your passkey")
    page.locator("#passkey-verify").click()
    on_page(page, "Share your details with Browser Test Agency")
    page.get_by_role("button", name="Allow", exact=True).click()
    claims = id_token_claims(server, returned_code(server, page, request), request)
    assert claims["acr"] == "Cl.Cm", claims
    assert "pwd" in claims["amr"] and "mfa" in claims["amr"], claims

    page.goto("/account/connected-services")  # now with the consent just given
    on_page(page, "Connected services")
    page.get_by_role("button", name="Withdraw consent for Browser Test Agency").click()
    on_page(page, "Connected services")
    expect(page.get_by_role("alert")).to_contain_text("You withdrew your consent for Browser Test Agency")
    page.goto("/account/record")
    on_page(page, "Your record")

    sign_out(page)  # signed in with the password alone, the passkey "lost"
    page.goto("/signin")
    sign_in(page, email, PASSWORD)
    on_page(page, "Use your passkey")
    page.locator("#passkey-skip").click()
    page.goto("/passkeys")
    page.get_by_role("link", name="I have lost all my passkeys").click()
    on_page(page, "You have lost your passkeys")
    page.get_by_role("button", name="Remove my passkeys in 7 days").click()
    assert_error_summary_links_to_fields(page)
    on_page(page, "You have lost your passkeys")
    page.get_by_label("Yes, I have lost all my passkeys").check()
    page.get_by_role("button", name="Remove my passkeys in 7 days").click()
    on_page(page, "Your passkeys")
    expect(page.locator("[data-passkeys-reset]")).to_contain_text("will be removed")
    page.get_by_role("button", name="Keep my passkeys").click()
    on_page(page, "Your passkeys")


def submit(page: Page) -> None:
    page.locator("main form[method=post] button[type=submit]").last.click()


def test_form_errors_are_summarised_and_linked_to_their_fields(page: Page, live_server: LiveServer) -> None:
    page.goto("/signup")
    submit(page)
    on_page(page, "Create your account")
    assert_error_summary_links_to_fields(page)

    email = f"errors-{secrets.token_hex(6)}@example.com"
    page.get_by_label("Email address").fill(email)
    submit(page)
    on_page(page, "Check your email")
    check_email = page.url
    page.get_by_label("Security code").fill("12345")
    submit(page)
    on_page(page, "Check your email")
    assert_error_summary_links_to_fields(page)

    code = emailed_code(page, email)
    page.goto(check_email)
    page.get_by_label("Security code").fill(code)
    submit(page)
    on_page(page, "Your details")
    page.get_by_label("Day").fill("31")
    page.get_by_label("Month").fill("2")
    page.get_by_label("Year").fill("1990")
    page.get_by_label("Password", exact=True).fill("short")
    submit(page)
    on_page(page, "Your details")
    expect(page.locator(".govuk-error-summary__list li")).to_have_count(4)  # names, date, password
    assert_error_summary_links_to_fields(page)

    page.goto("/recover")
    on_page(page, "Reset your password")
    submit(page)
    assert_error_summary_links_to_fields(page)
    assert_accessible(page)


def test_recovering_a_password_then_deleting_the_account(page: Page, live_server: LiveServer) -> None:
    email = live_server.create_citizen()
    page.goto("/signin")
    page.get_by_role("link", name="I have forgotten my password").click()
    on_page(page, "Reset your password")
    page.get_by_label("Email address").fill(email)
    submit(page)
    on_page(page, "Check your email")
    check_email = page.url
    code = emailed_code(page, email)
    page.goto(check_email)
    page.get_by_label("Security code").fill(code)
    submit(page)
    on_page(page, "Choose a new password")
    page.get_by_label("New password").fill("short")
    submit(page)
    on_page(page, "Choose a new password")
    assert_error_summary_links_to_fields(page)
    page.get_by_label("New password").fill(f"{PASSWORD} {secrets.token_hex(4)}")
    submit(page)

    page.goto("/account/delete")
    on_page(page, "Delete your account")
    submit(page)
    on_page(page, "Delete your account")
    assert_error_summary_links_to_fields(page)
    expect(page.locator("#confirm")).to_have_attribute("aria-describedby", "confirm-error")
    page.get_by_label("Yes, delete my account and its data").check()
    submit(page)
    on_page(page, "Your account has been deleted")
