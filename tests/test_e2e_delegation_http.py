"""A carer acts for a citizen over real HTTP, with Authlib's client as the agency (delegation.md).

The citizen signs in to the agency and consents; invites a carer from "People who can act for
you"; the carer opens the emailed link (read from the development outbox), signs in, accepts;
signs in to the agency, chooses the citizen at "Who are you using this service for?", and the
agency's Authlib client validates an ID token whose ``sub`` is the citizen's, with ``act`` and
``delegation``; userinfo and introspection agree. The citizen revokes: introspection says
inactive, userinfo refuses, refresh fails, the agency's back-channel logout is queued, and the
citizen's activity page lists the acting with a receipt.
"""

from __future__ import annotations

import html
import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select
from werkzeug.serving import make_server

from idp.accounts import create_account
from idp.app import build_services, create_app
from idp.config import Settings
from idp.models import OutboxMessage
from idp.outbound import DestinationPolicy
from idp.outbox import open_body
from idp.registry import ClientMetadata, create_agency, create_client
from tests.test_e2e_http import (
    PASSWORD,
    SCOPE,
    TIMEOUT,
    BrowserVisit,
    Provider,
    authorization_request,
    expect_callback,
    free_port,
    grant_error,
    relying_party,
    shutdown,
    submit,
    validate_id_token,
)

LINK = re.compile(r"(/delegation/invitation/[A-Za-z0-9_-]+)")


@pytest.fixture
def world(tmp_path: Any, database_url: str, settings: Settings) -> Iterator[tuple[Provider, str, Any]]:
    """The provider on loopback; one agency client with a back-channel logout URI; a citizen and a carer."""
    port, rp_port = free_port(), free_port()
    server_settings = Settings.from_env(
        environ={}, issuer=f"http://127.0.0.1:{port}", instance_path=tmp_path, database_url=database_url,
        key_cache_seconds=1, key_encryption_key=settings.key_encryption_key,
    )
    services = build_services(server_settings)
    key = ECKey.generate_key("P-256", private=True, parameters={"kid": f"rp-{secrets.token_hex(4)}", "alg": "ES256"})
    rp_base, email = f"http://127.0.0.1:{rp_port}", f"mary-{secrets.token_hex(6)}@example.com"
    carer = f"carol-{secrets.token_hex(6)}@example.com"
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        agency, _token = create_agency(session, "Benefits Agency")
        client, _secret = create_client(session, agency, ClientMetadata(
            client_name="Benefits Service", redirect_uris=[f"{rp_base}/cb"],
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [key.as_dict(private=False)]}, post_logout_redirect_uris=[f"{rp_base}/signed-out"],
            scope=SCOPE, backchannel_logout_uri=f"{rp_base}/backchannel-logout",
        ), destinations=DestinationPolicy.from_settings(services.settings))
        create_account(session, email=email, given_name="Mary", family_name="Smith", password=PASSWORD)
        create_account(session, email=carer, given_name="Carol", family_name="Jones", password=PASSWORD)
        client_id = client.client_id
    server = make_server("127.0.0.1", port, create_app(server_settings, services=services), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-delegation", daemon=True)
    thread.start()
    try:
        yield (Provider(issuer=server_settings.issuer, client_id=client_id, client_key=key,
                        redirect_uri=f"{rp_base}/cb", post_logout_redirect_uri=f"{rp_base}/signed-out", email=email),
               carer, services)
    finally:
        shutdown(server, thread)
        services.engine.dispose()


def walk(browser: requests.Session, provider: Provider, url: str, email: str, who: str | None = None) -> str:
    """Follow the provider's pages as a person would; return where it finally sends the browser."""
    response = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(15):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if not location.startswith(provider.issuer + "/"):
                return location
            response = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
            continue
        assert response.status_code == 200, f"{response.status_code} at {response.url}: {response.text[:300]}"
        path = urlsplit(response.url).path
        if path == "/signin":
            response = submit(browser, response, {"email": email, "password": PASSWORD})
        elif path.startswith("/consent/"):
            boxes = re.findall(r'name="scope" type="checkbox" value="([^"]+)"', response.text)
            response = submit(browser, response, {"decision": "allow", "scope": boxes})
        elif path.startswith("/authorize/who/"):
            assert who is not None, "asked who the service is for"
            choice = re.search(rf'value="([^"]+)">\s*<label[^>]*>{re.escape(who)}', response.text)
            response = submit(browser, response, {"who": choice.group(1) if choice else "missing"})
        else:
            return response.url
    raise AssertionError("too many redirects")


def page_form(browser: requests.Session, url: str, fields: dict[str, Any]) -> requests.Response:
    return submit(browser, browser.get(url, timeout=TIMEOUT), fields)


def test_carer_acts_for_citizen_then_citizen_revokes(world: tuple[Provider, str, Any]) -> None:
    provider, carer_email, services = world
    metadata = requests.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    jwks = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=TIMEOUT).json())
    agency = relying_party(provider, metadata, [])

    # Mary uses the service herself first (and so consents to sharing with the agency).
    mary = requests.Session()
    own = authorization_request(agency, metadata)
    location = walk(mary, provider, own.url, provider.email)
    token = agency.fetch_token(metadata["token_endpoint"], authorization_response=location, state=own.state,
                               code_verifier=own.code_verifier)
    mary_sub = validate_id_token(token["id_token"], jwks, provider, nonce=own.nonce,
                                 access_token=token["access_token"])["sub"]

    # Mary invites Carol; Carol opens the emailed link, signs in and accepts.
    invited = page_form(mary, f"{provider.issuer}/account/delegates/invite", {
        "email": carer_email, "type": "carer", "mode": "act", "services": "all", "details": "all"})
    assert invited.status_code == 302
    outbox = requests.get(f"{provider.issuer}/dev/outbox", params={"to": carer_email}, timeout=TIMEOUT).text
    link = provider.issuer + html.unescape(LINK.search(outbox).group(1))  # type: ignore[union-attr]
    carol = requests.Session()
    assert "Sign in to answer" in carol.get(link, timeout=TIMEOUT).text
    walk(carol, provider, f"{provider.issuer}/signin", carer_email)
    accept = carol.get(link, timeout=TIMEOUT)
    assert "Mary Smith asked you to help them" in accept.text
    assert submit(carol, accept, {"decision": "accept"}).status_code == 302

    # Carol signs in to the agency for Mary.
    agency = relying_party(provider, metadata, [])
    acting = authorization_request(agency, metadata)
    location = walk(carol, provider, acting.url, carer_email, who="Mary Smith")
    expect_callback(BrowserVisit(location=location, pages=[]), provider, acting)  # state and iss
    token = agency.fetch_token(metadata["token_endpoint"], authorization_response=location, state=acting.state,
                               code_verifier=acting.code_verifier)
    claims = validate_id_token(token["id_token"], jwks, provider, nonce=acting.nonce,
                               access_token=token["access_token"])
    assert claims["sub"] == mary_sub  # the agency serves Mary...
    assert set(claims["act"]) == {"sub"} and claims["act"]["sub"] != mary_sub  # ...and sees Carol acting
    assert claims["delegation"]["type"] == "carer" and claims["delegation"]["mode"] == "act"
    userinfo = agency.get(metadata["userinfo_endpoint"]).json()
    assert userinfo["sub"] == mary_sub and userinfo["given_name"] == "Mary"
    assert userinfo["act"] == claims["act"] and userinfo["delegation"] == claims["delegation"]
    described = agency.introspect_token(metadata["introspection_endpoint"], token=token["access_token"]).json()
    assert described["active"] and described["act"] == claims["act"] and described["sub"] == mary_sub

    # Mary revokes: at once, every token stops working and the agency is told.
    people = mary.get(f"{provider.issuer}/account/delegates", timeout=TIMEOUT)
    revoke = re.search(r'action="(/account/delegates/[^/]+/revoke)"', people.text)
    assert revoke is not None
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', people.text))
    assert mary.post(provider.issuer + revoke.group(1), data=hidden, allow_redirects=False,
                     timeout=TIMEOUT).status_code == 302
    assert agency.introspect_token(metadata["introspection_endpoint"], token=token["access_token"]).json() == \
        {"active": False}
    assert agency.get(metadata["userinfo_endpoint"]).status_code == 401
    assert grant_error(lambda: agency.refresh_token(metadata["token_endpoint"],
                                                    refresh_token=token["refresh_token"])) == "invalid_grant"
    with services.sessions() as session:
        logout = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "backchannel_logout",
                                                             OutboxMessage.recipient.endswith("/backchannel-logout")))
        assert any(provider.client_id in open_body(session, message) for message in logout)

    # Mary sees it all, with receipts.
    activity = mary.get(f"{provider.issuer}/account/delegates/activity", timeout=TIMEOUT).text
    assert 'data-activity="acted_on_behalf"' in activity and "Carol Jones" in activity
    receipt = re.search(r'href="(/account/record/\d+/receipt)"', activity)
    assert receipt and mary.get(provider.issuer + receipt.group(1), timeout=TIMEOUT).status_code == 200
