"""Double submits (idp/forms.py): the same rendered form posted twice, one after the other or at the
same moment, makes its change once; the second submission is sent where the first one led.

The generic test runs over the state-changing forms of the citizen's pages; the concurrent tests
(consent and invitations, two threads posting the same form at once) need PostgreSQL."""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from consent.consents import record_decision
from consent.delegation_models import Delegation
from consent.models import LedgerEntry
from idp.accounts import create_account
from idp.app import build_services, create_app
from idp.config import Settings
from idp.forms import FIELD
from idp.models import Account, FormSubmission, OutboxMessage
from idp.registry import create_agency
from idp.services import Services
from store.db import Base
from tests.conftest import CITIZEN_PASSWORD, make_client
from tests.idp import flows
from tests.idp.delegation_flows import delegate, emailed_link, person

ROOT = Path(__file__).resolve().parents[2]
FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
ACTION = re.compile(r'action="([^"]*)"')
INVITE = {"type": "carer", "mode": "act", "services": "all", "details": "all"}
on_postgres = pytest.mark.skipif(
    not os.environ.get("IDP_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="concurrent submissions need PostgreSQL (IDP_TEST_DATABASE_URL); on SQLite BEGIN IMMEDIATE serialises them")


def form_on(client: FlaskClient, page: str, action: str | None = None) -> tuple[str, dict[str, str]]:
    """The path a form of ``page`` posts to (the one whose action contains ``action``) and its hidden fields."""
    html = client.get(page).get_data(as_text=True)
    for attributes, body in FORM.findall(html):
        if 'method="post"' not in attributes:
            continue
        found = ACTION.search(attributes)
        target = found.group(1) if found else page
        if action is None or action in target:
            return target, dict(HIDDEN.findall(body))
    raise AssertionError(f"no form posting to {action!r} on {page}")


def writes(session: Session) -> dict[str, int]:
    """Rows in every table: a second write anywhere changes one of them."""
    session.expire_all()
    return {table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables if table.name != "form_submissions"}


# Each state-changing form of the citizen's pages: (page, form action, fields), prepared for Mary.
Scenario = Callable[[Session, Any, Account], tuple[str, str | None, dict[str, Any]]]


def _invite(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    return "/account/delegates/invite", None, INVITE | {"email": f"carer-{secrets.token_hex(3)}@example.com"}


def _revoke(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    delegation = delegate(session, ledger, mary, person(session, "Carol"))
    return "/account/delegates", f"/account/delegates/{delegation.id}/revoke", {}


def _stop_everyone(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    delegate(session, ledger, mary, person(session, "Carol"))
    return "/account/delegates/stop-everyone", None, {"confirm": "yes"}


def _ask(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    return "/account/acting-for/request", None, INVITE | {"email": person(session, "Olive").email}


def _stop_acting(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    delegation = delegate(session, ledger, person(session, "Olive"), mary)
    return "/account/acting-for", f"/account/acting-for/{delegation.id}/stop", {}


def _child(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    return "/account/acting-for/child", None, {"given_name": "Kit", "family_name": "Smith", "day": "1",
                                               "month": "2", "year": "2020", "confirm": "yes"}


def _withdraw(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    agency, _token = create_agency(session, "Withdrawn Agency")
    record_decision(session, mary.id, agency.id, {"email"}, set(), ledger=ledger, client_id="c")
    session.commit()
    return "/account/connected-services", f"/account/connected-services/{agency.id}/withdraw", {"decision": "withdraw"}


def _password(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    return "/account/password", None, {"current_password": CITIZEN_PASSWORD, "password": "a new long passphrase 42"}


def _recover(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    return "/recover", None, {"email": mary.email}


def _signup(session: Session, ledger: Any, mary: Account) -> tuple[str, str | None, dict[str, Any]]:
    return "/signup", None, {"email": f"new-{secrets.token_hex(3)}@example.com"}


SCENARIOS: dict[str, Scenario] = {
    "invite": _invite, "revoke": _revoke, "stop everyone": _stop_everyone, "ask to help": _ask,
    "stop acting": _stop_acting, "add a child": _child, "withdraw consent": _withdraw, "change password": _password,
    "recover": _recover, "sign up": _signup,
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_state_changing_form_submitted_twice_changes_once_and_leads_to_the_same_place(
        name: str, client: FlaskClient, db_session: Session, ledger: Any) -> None:
    mary = person(db_session, "Mary")
    page, action, fields = SCENARIOS[name](db_session, ledger, mary)
    if name not in ("recover", "sign up"):
        flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    target, hidden = form_on(client, page, action)
    assert hidden.get("form_token"), "the form carries a single-use token"
    first = client.post(target, data=fields | hidden)
    assert first.status_code == 302, first.get_data(as_text=True)
    after_first = writes(db_session)
    second = client.post(target, data=fields | hidden)
    assert (second.status_code, second.headers.get("Location")) == (302, first.headers["Location"])
    assert writes(db_session) == after_first, "the second submission wrote nothing"


def test_a_form_refused_for_its_errors_can_be_corrected_and_sent_with_the_same_token(
        client: FlaskClient, db_session: Session) -> None:
    mary = person(db_session, "Mary")
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    target, hidden = form_on(client, "/account/delegates/invite")
    assert client.post(target, data=INVITE | hidden | {"email": "not-an-email"}).status_code == 400
    assert client.post(target, data=INVITE | hidden | {"email": "carol@example.com"}).status_code == 302
    assert db_session.scalar(select(func.count()).select_from(Delegation)) == 1


def test_a_forged_or_stale_form_token_gets_the_reload_page(client: FlaskClient, db_session: Session) -> None:
    mary = person(db_session, "Mary")
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    target, hidden = form_on(client, "/account/delegates/invite")
    for forged in ("x" * 60, hidden["form_token"][:-2] + "AA", "\u00e9" * 50):
        response = client.post(target, data=INVITE | hidden | {"email": "carol@example.com", "form_token": forged})
        assert response.status_code == 400 and "reload the page" in response.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Delegation)) == 0


def test_every_form_of_ours_carries_a_form_token_beside_its_csrf_token() -> None:
    """Sign-in and RP-initiated logout are the two forms that are not claimed (idp/forms.py NOT_CLAIMED)."""
    unclaimed = {"signin/signin.html", "signin/logout_confirm.html"}
    for template in sorted((ROOT / "templates").rglob("*.html")):
        name = template.relative_to(ROOT / "templates").as_posix()
        for attributes, body in FORM.findall(template.read_text()):
            if 'method="post"' in attributes and name not in unclaimed:
                assert 'name="form_token"' in body, f"a form in {name} has no form_token"


# -- two submissions at the same moment (PostgreSQL) ------------------------------------------

@pytest.fixture
def committing_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on its own migrated schema, with sessions that really commit (threads see each other)."""
    from tests.production.conftest import fresh_schema

    url = fresh_schema(database_url, "double_submits")
    settings = Settings.from_env(environ={}, issuer="http://localhost", instance_path=tmp_path, database_url=url,
                                 key_cache_seconds=1)
    services = build_services(settings)
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
    app = create_app(settings, services=services)
    app.config["TESTING"] = True
    yield app
    services.engine.dispose()


def twin(client: FlaskClient, app: Flask) -> FlaskClient:
    """A second client with the same cookies: the same browser sending a second request."""
    other = app.test_client()
    for cookie in client._cookies.values():  # noqa: SLF001 — werkzeug has no public way to list them
        other.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    return other


def at_once(clients: list[FlaskClient], path: str, data: dict[str, Any]) -> list[TestResponse]:
    start, responses = threading.Barrier(len(clients)), [None] * len(clients)

    def post(index: int) -> None:
        start.wait()
        responses[index] = clients[index].post(path, data=data)  # type: ignore[call-overload]

    threads = [threading.Thread(target=post, args=(index,)) for index in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return responses  # type: ignore[return-value]


def _services(app: Flask) -> Services:
    return app.extensions["idp"]  # type: ignore[no-any-return]


def _citizen(app: Flask) -> Account:
    with _services(app).sessions.begin() as session:
        return create_account(session, email=f"twice-{secrets.token_hex(4)}@example.com", given_name="Mary",
                              family_name="Smith", password=CITIZEN_PASSWORD)


@on_postgres
def test_the_same_invitation_posted_twice_at_once_invites_once_and_emails_once(committing_app: Flask) -> None:
    mary, carol = _citizen(committing_app), f"carol-{secrets.token_hex(3)}@example.com"
    browser = committing_app.test_client()
    flows.sign_in(browser, mary.email, CITIZEN_PASSWORD)
    target, hidden = form_on(browser, "/account/delegates/invite")
    responses = at_once([browser, twin(browser, committing_app)], target, INVITE | hidden | {"email": carol})
    assert [r.status_code for r in responses] == [302, 302], [r.get_data(as_text=True)[:300] for r in responses]
    assert responses[0].headers["Location"] == responses[1].headers["Location"]
    with _services(committing_app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delegation).where(Delegation.invite_email == carol)) == 1
        assert session.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.recipient == carol)) == 1


@on_postgres
def test_the_same_consent_posted_twice_at_once_is_recorded_once(committing_app: Flask) -> None:
    mary = _citizen(committing_app)
    with _services(committing_app).sessions() as session:
        agency, _token = create_agency(session, "Twice Agency")
        client_id = make_client(session, agency, method="client_secret_basic").client_id
    browser = committing_app.test_client()
    flows.sign_in(browser, mary.email, CITIZEN_PASSWORD)
    rp_params = {"response_type": "code", "client_id": client_id, "redirect_uri": "https://rp.example/cb",
                 "scope": "openid profile email", "state": "s", "code_challenge": flows.pkce().challenge,
                 "code_challenge_method": "S256"}
    consent_page = browser.get("/authorize", query_string=rp_params).headers["Location"]
    assert "/consent/" in consent_page
    target, hidden = form_on(browser, consent_page)
    data = hidden | {"decision": "allow", "scope": ["profile", "email"]}
    responses = at_once([browser, twin(browser, committing_app)], target, data)
    assert [r.status_code for r in responses] == [302, 302], [r.get_data(as_text=True)[:300] for r in responses]
    assert responses[0].headers["Location"] == responses[1].headers["Location"]
    with _services(committing_app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)
                              .where(LedgerEntry.type == "consent.granted")) == 1


def test_a_replayed_outcome_that_sets_sign_in_state_needs_the_csrf_check(
        client: FlaskClient, app: Flask, citizen: Account) -> None:
    """Login CSRF through the replay: an attacker starts a recovery of their own account, keeps that
    page's form token, and has another site post it from the victim's browser (no cookies, no CSRF
    token). The first outcome sets the recovery challenge in the flow cookie: it must not be planted."""
    target, hidden = form_on(client, "/recover")
    assert client.post(target, data=hidden | {"email": citizen.email}).status_code == 302
    victim = app.test_client()
    planted = victim.post(target, data={FIELD: hidden[FIELD]})
    assert planted.status_code == 400  # the CSRF check, not the first submission's outcome
    assert "Set-Cookie" not in planted.headers


def test_no_link_secret_is_kept_with_a_submission(
        client: FlaskClient, db_session: Session, ledger: Any) -> None:
    """A form on a page whose URL carries a link's secret (an invitation) is claimed under the path
    as logged, and a submission that ends without an outcome stores none (red-team finding B)."""
    mary = person(db_session, "Mary")
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    target, hidden = form_on(client, "/account/delegates/invite")
    carol = f"carol-{secrets.token_hex(3)}@example.com"
    assert client.post(target, data=hidden | INVITE | {"email": carol}).status_code == 302
    secret = emailed_link(db_session, carol, re.compile(r"/delegation/invitation/([A-Za-z0-9_-]+)"))
    _, fresh = form_on(client, "/account/delegates/invite")  # a token of a page Mary has open
    client.post(f"/delegation/invitation/{secret}", data=fresh | {"decision": "decline"})  # not hers: 403
    kept = " ".join(f"{row.path} {row.outcome}" for row in db_session.scalars(select(FormSubmission)))
    assert kept and secret not in kept
