"""What a citizen does in the browser, each page checked by axe-core on the way."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from playwright.sync_api import CDPSession, Page, expect

from tests.browser.axe import assert_accessible

CODE = re.compile(r"\b(\d{6})\b")


def on_heading(page: Page, heading: str) -> None:
    """The page a person would see next, by its heading (for pages without JavaScript, where axe cannot run)."""
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)


def on_page(page: Page, heading: str) -> None:
    """The page a person would see next (by its heading), checked by axe."""
    on_heading(page, heading)
    assert_accessible(page)


def assert_error_summary_links_to_fields(page: Page) -> None:
    """GOV.UK error summary: every entry links to a field that is on the page and marked as in error."""
    links = page.locator(".govuk-error-summary__list a")
    expect(links.first).to_be_visible()
    for href in links.evaluate_all("links => links.map(link => link.getAttribute('href'))"):
        field = page.locator(href)
        expect(field).to_have_count(1)
        expect(page.locator(f".govuk-form-group--error:has({href})")).to_have_count(1)


def sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Continue", exact=True).click()


def sign_out(page: Page) -> None:
    page.goto("/signout")
    on_page(page, "Sign out")
    page.get_by_role("button", name="Sign out").click()
    on_page(page, "You have signed out")


def emailed_code(page: Page, email: str, arrive: Callable[[Page, str], None] = on_page) -> str:
    """Read the code as a developer would: on the development outbox page."""
    page.goto(f"/dev/outbox?to={email}")
    arrive(page, "Outbox")
    body = page.locator("[data-outbox-body]").first.inner_text()
    match = CODE.search(body)
    assert match, body
    return match.group(1)


@dataclasses.dataclass
class VirtualAuthenticator:
    """A platform authenticator from Chromium's DevTools WebAuthn domain: it holds discoverable
    credentials and always verifies the user."""

    cdp: CDPSession
    id: str

    @classmethod
    def add(cls, page: Page) -> VirtualAuthenticator:
        cdp = page.context.new_cdp_session(page)
        cdp.send("WebAuthn.enable", {"enableUI": False})
        added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True, "automaticPresenceSimulation": True,
        }})
        return cls(cdp=cdp, id=added["authenticatorId"])

    def credentials(self) -> list[dict[str, object]]:
        return list(self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})["credentials"])


def add_passkey(page: Page, authenticator: VirtualAuthenticator) -> None:
    """From a page with an "Add a passkey" button, through the ceremony, to where it leads."""
    page.locator("#add-passkey").click()
    on_page(page, "Add a passkey")
    page.get_by_label("Name for this passkey (optional)").fill("Virtual authenticator")
    page.locator("#passkey-register").click()
    page.wait_for_url(lambda url: "/passkeys/add" not in url)
    assert_accessible(page)
    (credential,) = authenticator.credentials()
    assert credential["isResidentCredential"] is True
