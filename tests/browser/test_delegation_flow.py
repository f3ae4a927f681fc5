"""A carer's journey in Chromium (delegation.md): Mary invites Carol → Carol opens the emailed link,
signs in and accepts → Carol signs in to the agency's service and chooses to use it for Mary → the
tokens are Mary's with Carol as actor → Mary stops Carol → Carol's token no longer works.
A parent gives a 14-year-old their own account, and the young person agrees the parent keeps
helping. axe-core checks every delegation page on the way (WCAG 2.2 AA)."""

from __future__ import annotations

import datetime as dt
import re
import secrets

import requests
from playwright.sync_api import Browser, expect
from sqlalchemy import update

from idp.dependents import COOLING_OFF
from idp.models import EmailChallenge
from store.db import utcnow
from tests.browser.citizen import assert_error_summary_links_to_fields, on_page, sign_in, sign_out
from tests.browser.conftest import PASSWORD, LiveServer, browser_page
from tests.browser.relying_party import authorization_request, returned_code

LINK = re.compile(r"(/delegation/invitation/[A-Za-z0-9_-]+)")
OWN_ACCOUNT = re.compile(r"(/own-account/[A-Za-z0-9_.-]+)")


def test_invite_accept_act_revoke(chromium: Browser, live_server: LiveServer) -> None:
    mary_email = live_server.create_citizen("Mary", "Smith")
    carol_email = live_server.create_citizen("Carol", "Jones")
    with browser_page(chromium, live_server) as mary, browser_page(chromium, live_server) as carol:
        mary.goto("/signin")
        sign_in(mary, mary_email, PASSWORD)
        mary.goto("/account/delegates")
        on_page(mary, "People who can act for you")
        mary.get_by_role("link", name="Invite someone to help you").click()
        on_page(mary, "Invite someone to help you")
        mary.get_by_role("button", name="Send invitation").click()  # empty: errors, nothing sent
        assert_error_summary_links_to_fields(mary)
        on_page(mary, "Invite someone to help you")
        mary.get_by_label("Their email address").fill(carol_email)
        mary.get_by_label("Carer").check()
        mary.get_by_label("Use services for you").check()
        mary.get_by_label("Yes, to one other person, with no more than I allow them").check()
        mary.get_by_role("button", name="Send invitation").click()
        on_page(mary, "People who can act for you")
        expect(mary.locator(".govuk-notification-banner")).to_contain_text("emailed your invitation")

        mary.goto(f"/dev/outbox?to={carol_email}")
        link = LINK.search(mary.locator("[data-outbox-body]").first.inner_text())
        assert link is not None
        carol.goto(link.group(1))
        on_page(carol, "Sign in to answer an invitation")
        carol.get_by_role("link", name="Sign in").click()
        sign_in(carol, carol_email, PASSWORD)
        on_page(carol, "Mary Smith asked you to help them")
        carol.get_by_role("button", name="Accept").click()
        on_page(carol, "People you can act for")

        request = authorization_request(live_server)
        carol.goto(request.url)
        expect(carol.get_by_role("heading", level=1)).to_contain_text("Who are you using")
        on_page(carol, "Who are you using Browser Test Service for?")
        carol.get_by_label("Mary Smith, as their carer").check()
        carol.get_by_role("button", name="Continue").click()
        code = returned_code(live_server, carol, request)
        token = requests.post(f"{live_server.url}/token", timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": live_server.redirect_uri,
            "client_id": live_server.client_id, "code_verifier": request.pkce.verifier}).json()
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        info = requests.get(f"{live_server.url}/userinfo", headers=bearer, timeout=10).json()
        assert info["delegation"]["type"] == "carer" and "sub" in info["act"] and info["sub"] != info["act"]["sub"]

        carol.goto("/account/acting-for")  # every page now says whom Carol is acting for
        on_page(carol, "People you can act for")
        expect(carol.locator("[data-acting-banner]")).to_contain_text(
            "You are using Browser Test Service for Mary Smith, as their carer")
        carol.get_by_role("link", name="Ask someone else to help Mary Smith").click()
        on_page(carol, "Ask someone else to help Mary Smith")
        carol.get_by_role("button", name="Send invitation").click()
        assert_error_summary_links_to_fields(carol)
        on_page(carol, "Ask someone else to help Mary Smith")

        mary.goto("/account/delegates")
        mary.get_by_role("button", name="Stop Carol Jones acting for you").click()
        on_page(mary, "People who can act for you")
        expect(mary.locator(".govuk-notification-banner")).to_contain_text("can no longer act for you")
        assert requests.get(f"{live_server.url}/userinfo", headers=bearer, timeout=10).status_code == 401

        mary.goto("/account/delegates/activity")
        on_page(mary, "What people have done for you")
        expect(mary.locator('[data-activity="acted_on_behalf"]')).to_contain_text("Carol Jones")


def test_the_other_delegation_pages_are_accessible_with_and_without_errors(chromium: Browser,
                                                                          live_server: LiveServer) -> None:
    email = live_server.create_citizen("Pam", "Parent")
    with browser_page(chromium, live_server) as page:
        page.goto("/signin")
        sign_in(page, email, PASSWORD)
        page.goto("/account/acting-for")
        on_page(page, "People you can act for")
        page.get_by_role("link", name="Add a child").click()
        on_page(page, "Add a child")
        page.get_by_role("button", name="Add child").click()
        assert_error_summary_links_to_fields(page)
        on_page(page, "Add a child")
        page.get_by_label("Child's first name").fill("Kit")
        page.get_by_label("Child's last name").fill("Parent")
        page.get_by_label("Day").fill("1")
        page.get_by_label("Month").fill("2")
        page.get_by_label("Year").fill("2019")
        page.get_by_label("I have parental responsibility for this child").check()
        page.get_by_role("button", name="Add child").click()
        on_page(page, "People you can act for")
        expect(page.locator(".govuk-summary-card")).to_contain_text("Kit Parent")
        page.get_by_role("link", name="Ask to help someone").click()
        on_page(page, "Ask to help someone")
        page.get_by_role("button", name="Send request").click()
        assert_error_summary_links_to_fields(page)
        on_page(page, "Ask to help someone")
        page.goto("/account/delegates/stop-everyone")
        on_page(page, "Stop everyone acting for you")
        page.get_by_role("button", name="Stop everyone").click()
        assert_error_summary_links_to_fields(page)
        on_page(page, "Stop everyone acting for you")


def test_a_parent_gives_a_teenager_their_own_account_and_the_teenager_keeps_them(
        chromium: Browser, live_server: LiveServer) -> None:
    parent_email = live_server.create_citizen("Pam", "Parent")
    born = dt.date.today().year - 14
    with browser_page(chromium, live_server) as pam, browser_page(chromium, live_server) as kit:
        pam.goto("/signin")
        sign_in(pam, parent_email, PASSWORD)
        pam.goto("/account/acting-for/child")
        pam.get_by_label("Child's first name").fill("Kit")
        pam.get_by_label("Child's last name").fill("Parent")
        pam.get_by_label("Day").fill("1")
        pam.get_by_label("Month").fill("1")
        pam.get_by_label("Year").fill(str(born))
        pam.get_by_label("I have parental responsibility for this child").check()
        pam.get_by_role("button", name="Add child").click()
        on_page(pam, "People you can act for")
        pam.get_by_role("link", name="Give Kit their own account").click()
        on_page(pam, "Give Kit their own account")
        pam.get_by_role("button", name="Send link").click()
        assert_error_summary_links_to_fields(pam)
        on_page(pam, "Give Kit their own account")
        kit_email = f"kit-{secrets.token_hex(4)}@example.com"
        pam.get_by_label("Kit's own email address").fill(kit_email)
        pam.get_by_role("button", name="Send link").click()
        on_page(pam, "People you can act for")
        expect(pam.locator(".govuk-notification-banner")).to_contain_text("link to set up their account")

        pam.goto(f"/dev/outbox?to={kit_email}")
        link = OWN_ACCOUNT.search(pam.locator("[data-outbox-body]").first.inner_text())
        assert link is not None
        kit.goto(link.group(1))
        on_page(kit, "Set up your account, Kit")
        kit.get_by_role("button", name="Create my account").click()
        assert_error_summary_links_to_fields(kit)
        on_page(kit, "Set up your account, Kit")
        kit.get_by_label("Choose a password").fill("kit's own long passphrase 42")
        kit.get_by_role("button", name="Create my account").click()
        on_page(kit, "People who can act for you")
        expect(kit.locator(".govuk-summary-card")).to_contain_text("Pam Parent")
        # Not from the session the link started: a week later, signed in again as themselves.
        expect(kit.locator("#agree-from")).to_contain_text("You can agree from")
        expect(kit.get_by_role("button", name="Let Pam keep helping me")).to_have_count(0)
        with live_server.services.sessions.begin() as session:
            session.execute(update(EmailChallenge).where(EmailChallenge.email == kit_email,
                                                         EmailChallenge.verified_at.is_not(None))
                            .values(verified_at=utcnow() - COOLING_OFF - dt.timedelta(minutes=1)))
        sign_out(kit)
        kit.goto("/signin")
        sign_in(kit, kit_email, "kit's own long passphrase 42")
        kit.goto("/account/delegates")
        kit.get_by_role("button", name="Let Pam keep helping me").click()
        on_page(kit, "People who can act for you")
        expect(kit.locator(".govuk-notification-banner")).to_contain_text("They can keep helping you")
