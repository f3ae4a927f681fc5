"""Passkeys (sign-in.md "Passkeys"; WebAuthn Level 3 §7.1 registration, §7.2 authentication):
registering, signing in with a passkey alone or after a password, against a software authenticator."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.config import Settings
from idp.models import Account, LoginSession, OutboxMessage, Passkey
from store.db import utcnow
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows, passkey_flows
from tests.idp.authenticator import SoftAuthenticator
from tests.idp.passkey_flows import (
    another_citizen,
    browser_session,
    credential_challenge,
    error_of,
    passkey_count,
    register_then_sign_out,
    sign_out,
)


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator()


@pytest.fixture
def with_passkey(client: FlaskClient, signed_in: Account, authenticator: SoftAuthenticator) -> Account:
    """A citizen with a password and one passkey, signed out again."""
    return register_then_sign_out(client, signed_in, authenticator)


# --- registration --------------------------------------------------------------------------

def test_registration_asks_for_a_discoverable_credential_with_user_verification_and_no_attestation(
        client: FlaskClient, signed_in: Account) -> None:
    options = passkey_flows.options(client, "register", flows.csrf_token(client))
    assert options["rp"]["id"] == "localhost"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["requireResidentKey"] is True
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert options["user"]["name"] == signed_in.email
    assert -7 in [param["alg"] for param in options["pubKeyCredParams"]]


def test_a_signed_in_citizen_registers_a_passkey_and_it_is_stored_with_its_details(
        client: FlaskClient, db_session: Session, signed_in: Account, authenticator: SoftAuthenticator) -> None:
    response = passkey_flows.register(client, authenticator, name="  Work\tlaptop ")
    assert response.status_code == 200
    assert response.get_json() == {"redirect": "/passkeys?added=1"}
    stored = db_session.get(Passkey, authenticator.credentials[0].id)
    assert stored is not None and stored.account_id == signed_in.id
    assert stored.name == "Work laptop"
    assert stored.aaguid == "00000000-0000-0000-0000-000000000000"
    assert stored.transports == ["hybrid", "internal"]
    assert stored.user_verified and not stored.backup_eligible and stored.last_used_at is None


def test_adding_a_passkey_is_reported_to_the_citizen_by_email(
        client: FlaskClient, db_session: Session, signed_in: Account, authenticator: SoftAuthenticator) -> None:
    passkey_flows.register(client, authenticator)
    subjects = db_session.scalars(select(OutboxMessage.subject).where(OutboxMessage.recipient == signed_in.email))
    assert any("passkey" in (subject or "") for subject in subjects)


def test_registration_options_exclude_the_citizens_existing_passkeys(
        client: FlaskClient, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    flows.sign_in(client, with_passkey.email, CITIZEN_PASSWORD)
    assert passkey_flows.confirm(client, authenticator).status_code == 200
    options = passkey_flows.options(client, "register", flows.csrf_token(client))
    assert [item["id"] for item in options["excludeCredentials"]] == [authenticator.credentials[0].id]


def test_registration_from_another_origin_is_refused_and_nothing_is_saved(
        client: FlaskClient, db_session: Session, signed_in: Account, authenticator: SoftAuthenticator) -> None:
    response = passkey_flows.register(client, authenticator, origin="https://phish.example")
    assert error_of(response) == "verification_failed"
    assert passkey_count(db_session) == 0


def test_registration_for_another_rp_id_is_refused(
        client: FlaskClient, db_session: Session, signed_in: Account, authenticator: SoftAuthenticator) -> None:
    response = passkey_flows.register(client, authenticator, rp_id="phish.example")
    assert error_of(response) == "verification_failed"
    assert passkey_count(db_session) == 0


def test_registration_without_user_verification_is_refused(
        client: FlaskClient, db_session: Session, signed_in: Account) -> None:
    response = passkey_flows.register(client, SoftAuthenticator(user_verified=False))
    assert error_of(response) == "verification_failed"
    assert passkey_count(db_session) == 0


def test_a_credential_registered_twice_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    passkey_flows.sign_in(client, authenticator)
    response = passkey_flows.register(client, authenticator, again=authenticator.credentials[0])
    assert error_of(response) == "credential_exists"
    assert passkey_count(db_session) == 1


# --- signing in ----------------------------------------------------------------------------

def test_usernameless_sign_in_with_a_passkey_gives_a_two_factor_session(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    options = passkey_flows.options(client, "signin", flows.csrf_token(client))
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    response = passkey_flows.sign_in(client, authenticator)
    assert response.status_code == 200 and response.get_json() == {"redirect": "/"}
    login = browser_session(client, db_session)
    assert login is not None and login.account_id == with_passkey.id
    assert (login.acr, login.amr) == ("Cl.Cm", ["hwk", "mfa"])


def test_signing_in_records_the_counter_and_the_time_of_use(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    passkey_flows.sign_in(client, authenticator)
    db_session.expire_all()
    stored = db_session.get(Passkey, authenticator.credentials[0].id)
    assert stored is not None and stored.sign_count == 1
    assert stored.last_used_at is not None and utcnow() - stored.last_used_at < dt.timedelta(minutes=1)


def test_a_synced_passkey_is_reported_as_a_software_key(
        client: FlaskClient, db_session: Session, signed_in: Account) -> None:
    synced = SoftAuthenticator(backup_eligible=True)
    passkey_flows.register(client, synced)
    sign_out(client)
    assert passkey_flows.sign_in(client, synced).status_code == 200
    login = browser_session(client, db_session)
    assert login is not None and (login.acr, login.amr) == ("Cl.Cm", ["swk", "mfa"])


def test_password_alone_gives_a_one_factor_session(
        client: FlaskClient, db_session: Session, citizen: Account) -> None:
    response = flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    assert response.headers["Location"] == "/"
    login = browser_session(client, db_session)
    assert login is not None and (login.acr, login.amr) == ("Cl", ["pwd"])


def test_after_the_password_a_citizen_with_a_passkey_is_offered_it_as_a_second_factor(
        client: FlaskClient, with_passkey: Account) -> None:
    response = flows.sign_in(client, with_passkey.email, CITIZEN_PASSWORD)
    assert response.headers["Location"] == "/signin/passkey"
    page = client.get("/signin/passkey").get_data(as_text=True)
    assert 'id="passkey-verify"' in page and 'data-csrf-token="' in page
    assert "<script>" not in page and "passkeys.js" in page


def test_password_then_passkey_upgrades_the_session_to_two_factors_under_a_new_id(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    flows.sign_in(client, with_passkey.email, CITIZEN_PASSWORD)
    before = browser_session(client, db_session)
    assert before is not None and before.acr == "Cl"
    before_id, before_sid = before.id, before.sid
    response = passkey_flows.confirm(client, authenticator)
    assert response.status_code == 200 and response.get_json() == {"redirect": "/"}
    after = browser_session(client, db_session)
    assert after is not None and (after.acr, after.amr) == ("Cl.Cm", ["pwd", "hwk", "mfa"])
    assert after.id != before_id  # a new cookie: no fixation
    assert after.sid == before_sid  # the same single sign-on session for the services in it
    assert db_session.get(LoginSession, before_id).ended_at is not None  # type: ignore[union-attr]


def test_a_citizen_may_continue_without_the_passkey_and_stays_at_one_factor(
        client: FlaskClient, db_session: Session, with_passkey: Account) -> None:
    flows.sign_in(client, with_passkey.email, CITIZEN_PASSWORD)
    response = client.post("/signin/passkey", data={"decision": "skip", "csrf_token": flows.csrf_token(client)})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    login = browser_session(client, db_session)
    assert login is not None and login.acr == "Cl"


def test_another_citizens_passkey_cannot_confirm_this_citizen(
        client: FlaskClient, app: Any, db_session: Session, with_passkey: Account,
        authenticator: SoftAuthenticator) -> None:
    other = another_citizen(db_session, "other")
    flows.sign_in(client, other.email, CITIZEN_PASSWORD)
    other_key = SoftAuthenticator()
    passkey_flows.register(client, other_key)
    token, credential = passkey_flows.assertion(client, other_key, "confirm")
    mine = authenticator.get({"challenge": credential_challenge(credential), "rpId": "localhost"})
    response = passkey_flows.post_json(client, "/passkeys/confirm/verify", {"credential": mine}, token)
    assert error_of(response) == "unknown_credential"
    login = browser_session(client, db_session)
    assert login is not None and login.acr == "Cl"


# --- settings ------------------------------------------------------------------------------

def test_the_rp_id_and_origin_come_from_the_issuer(tmp_path: Any) -> None:
    settings = Settings.from_env(environ={}, issuer="https://ID.example.gov:443/oidc", instance_path=tmp_path)
    assert (settings.passkey_rp_id, settings.passkey_origin) == ("id.example.gov", "https://id.example.gov")
    other = Settings.from_env(environ={}, issuer="http://localhost:5000", instance_path=tmp_path)
    assert (other.passkey_rp_id, other.passkey_origin) == ("localhost", "http://localhost:5000")


def test_the_sign_in_page_offers_usernameless_sign_in_to_the_script(client: FlaskClient) -> None:
    page = client.get("/signin").get_data(as_text=True)
    assert 'id="passkey-signin"' in page and 'data-options-url="/passkeys/signin/options"' in page
    assert re.search(r'<script src="/static/passkeys.js[^"]*" defer></script>', page)
    script = client.get("/static/passkeys.js")
    assert script.status_code == 200
    script.close()
