"""RP-initiated logout in Chromium: an ID token of the person signed in signs them out at once and
returns to the service; anyone else's is asked about first, and the confirmation's redirect to the
registered post-logout URI passes the page's CSP ``form-action`` (Chromium checks redirects too)."""

from __future__ import annotations

from urllib.parse import urlencode

import requests
from playwright.sync_api import Browser, Page, expect

from tests.browser.citizen import sign_in
from tests.browser.conftest import PASSWORD, LiveServer, browser_page
from tests.browser.relying_party import TIMEOUT, authorization_request, returned_code


def signed_in_id_token(page: Page, server: LiveServer, email: str) -> str:
    request = authorization_request(server)
    page.goto(request.url)
    sign_in(page, email, PASSWORD)
    page.get_by_role("button", name="Allow", exact=True).click()
    code = returned_code(server, page, request)
    response = requests.post(f"{server.url}/token", timeout=TIMEOUT, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": server.redirect_uri,
        "client_id": server.client_id, "code_verifier": request.pkce.verifier})
    assert response.status_code == 200, response.text
    return str(response.json()["id_token"])


def logout_url(server: LiveServer, hint: str) -> str:
    query = urlencode({"id_token_hint": hint, "post_logout_redirect_uri": f"{server.rp_url}/signed-out",
                       "state": "bye"})
    return f"{server.url}/logout?{query}"


def test_someone_elses_id_token_asks_first_then_returns_to_the_service(chromium: Browser,
                                                                        live_server: LiveServer) -> None:
    with browser_page(chromium, live_server) as victim, browser_page(chromium, live_server) as other:
        hint = signed_in_id_token(other, live_server, live_server.create_citizen("Eve", "Other"))
        signed_in_id_token(victim, live_server, live_server.create_citizen())
        victim.goto(logout_url(live_server, hint))
        expect(victim.get_by_role("heading", level=1)).to_have_text("Do you want to sign out?")
        victim.goto("/")
        expect(victim.get_by_text("You are signed in as")).to_be_visible()
        victim.goto(logout_url(live_server, hint))
        victim.get_by_role("button", name="Sign out").click()
        victim.wait_for_url(f"{live_server.rp_url}/signed-out?state=bye")
        victim.goto("/")
        expect(victim.get_by_text("You are signed in as")).to_have_count(0)


def test_the_persons_own_id_token_signs_out_at_once(page: Page, live_server: LiveServer) -> None:
    hint = signed_in_id_token(page, live_server, live_server.create_citizen())
    # With the browser's cookies; read the redirect rather than follow it (a redirect answering a
    # page.goto is not routed to the stand-in relying party).
    response = page.context.request.get(logout_url(live_server, hint), max_redirects=0)
    assert response.status == 302 and response.headers["location"] == f"{live_server.rp_url}/signed-out?state=bye"
    page.goto("/")
    expect(page.get_by_text("You are signed in as")).to_have_count(0)
