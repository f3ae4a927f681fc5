"""Passkeys (sign-in.md "Passkeys"; WebAuthn Level 3 §7.1 registration, §7.2 authentication):
ceremonies against a software authenticator, every refusal, and managing the citizen's passkeys."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from idp import passkeys
from idp.accounts import create_account
from idp.config import Settings
from idp.db import utcnow
from idp.models import Account, LoginSession, OutboxMessage, Passkey, WebAuthnChallenge
from idp.passkeys import PasskeyError, RelyingParty
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows, passkey_flows
from tests.idp.authenticator import SoftAuthenticator, unb64url

RP = RelyingParty(id="localhost", origin="http://localhost", name="Test", challenge_ttl=300)


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator()


@pytest.fixture
def with_passkey(client: FlaskClient, signed_in: Account, authenticator: SoftAuthenticator) -> Account:
    """A citizen with a password and one passkey, signed out again."""
    assert passkey_flows.register(client, authenticator).status_code == 200
    sign_out(client)
    return signed_in


def sign_out(client: FlaskClient) -> None:
    client.post("/signout", data={"csrf_token": flows.csrf_token(client)})


def browser_session(client: FlaskClient, db_session: Session) -> LoginSession | None:
    cookie = client.get_cookie("idp_session")
    if cookie is None or not cookie.value:
        return None
    db_session.expire_all()
    return db_session.get(LoginSession, hashlib.sha256(cookie.value.encode()).hexdigest())


def passkey_count(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Passkey)) or 0


def error_of(response: Any) -> str:
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    body = response.get_json()
    assert body["message"]
    return str(body["error"])


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
    other = flows_citizen(db_session, "other")
    flows.sign_in(client, other.email, CITIZEN_PASSWORD)
    other_key = SoftAuthenticator()
    passkey_flows.register(client, other_key)
    token, credential = passkey_flows.assertion(client, other_key, "confirm")
    mine = authenticator.get({"challenge": credential_challenge(credential), "rpId": "localhost"})
    response = passkey_flows.post_json(client, "/passkeys/confirm/verify", {"credential": mine}, token)
    assert error_of(response) == "unknown_credential"
    login = browser_session(client, db_session)
    assert login is not None and login.acr == "Cl"


# --- refusals ------------------------------------------------------------------------------

def test_a_replayed_assertion_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    token, credential = passkey_flows.assertion(client, authenticator, "signin")
    first = passkey_flows.post_json(client, "/passkeys/signin/verify", {"credential": credential}, token)
    assert first.status_code == 200
    sign_out(client)
    replay = passkey_flows.post_json(client, "/passkeys/signin/verify", {"credential": credential},
                                     flows.csrf_token(client))
    assert error_of(replay) == "unknown_challenge"
    assert browser_session(client, db_session) is None


def test_a_challenge_cannot_be_consumed_twice(
        db_session: Session, with_passkey: Account) -> None:
    ceremony = passkeys.start_authentication(db_session, RP, None)
    passkeys.consume_challenge(db_session, ceremony.id, "authenticate", None)
    with pytest.raises(PasskeyError) as refused:
        passkeys.consume_challenge(db_session, ceremony.id, "authenticate", None)
    assert refused.value.error == "challenge_used"


def test_a_challenge_is_spent_even_when_the_response_fails_verification(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    token, credential = passkey_flows.assertion(client, authenticator, "signin", origin="https://phish.example")
    passkey_flows.post_json(client, "/passkeys/signin/verify", {"credential": credential}, token)
    unused = db_session.scalars(select(WebAuthnChallenge).where(WebAuthnChallenge.used_at.is_(None))).all()
    assert unused == []


def test_challenges_expired_for_an_hour_are_pruned_when_a_ceremony_starts(
        db_session: Session, citizen: Account) -> None:
    old = passkeys.start_authentication(db_session, RP, None)
    recent = passkeys.start_authentication(db_session, RP, None)
    db_session.execute(update(WebAuthnChallenge).where(WebAuthnChallenge.id == old.id)
                       .values(expires_at=utcnow() - dt.timedelta(hours=2)))
    db_session.execute(update(WebAuthnChallenge).where(WebAuthnChallenge.id == recent.id)
                       .values(expires_at=utcnow() - dt.timedelta(minutes=5)))
    passkeys.start_registration(db_session, RP, citizen)
    db_session.expire_all()
    assert db_session.get(WebAuthnChallenge, old.id) is None
    with pytest.raises(PasskeyError) as refused:
        passkeys.consume_challenge(db_session, recent.id, "authenticate", None)
    assert refused.value.error == "challenge_expired"


def test_a_challenge_for_one_purpose_cannot_finish_another(db_session: Session, citizen: Account) -> None:
    ceremony = passkeys.start_registration(db_session, RP, citizen)
    with pytest.raises(PasskeyError) as refused:
        passkeys.consume_challenge(db_session, ceremony.id, "authenticate", citizen.id)
    assert refused.value.error == "unknown_challenge"


def test_an_expired_challenge_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    token, credential = passkey_flows.assertion(client, authenticator, "signin")
    db_session.execute(update(WebAuthnChallenge).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    db_session.commit()
    response = passkey_flows.post_json(client, "/passkeys/signin/verify", {"credential": credential}, token)
    assert error_of(response) == "challenge_expired"
    assert browser_session(client, db_session) is None


def test_an_assertion_made_for_another_origin_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    response = passkey_flows.sign_in(client, authenticator, origin="https://phish.example")
    assert error_of(response) == "verification_failed"
    assert browser_session(client, db_session) is None


def test_an_assertion_made_for_another_rp_id_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    response = passkey_flows.sign_in(client, authenticator, rp_id="phish.example")
    assert error_of(response) == "verification_failed"
    assert browser_session(client, db_session) is None


def test_tampered_client_data_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    response = passkey_flows.sign_in(client, authenticator, tamper=True)
    assert error_of(response) == "verification_failed"
    assert browser_session(client, db_session) is None


def test_an_assertion_made_inside_a_cross_origin_frame_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    framed = {"crossOrigin": True, "topOrigin": "https://phish.example"}
    response = passkey_flows.sign_in(client, authenticator, client_data=framed)
    assert error_of(response) == "verification_failed"


def test_an_assertion_signed_for_a_different_challenge_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    token, _credential = passkey_flows.assertion(client, authenticator, "signin")
    forged = authenticator.get({"challenge": "A" * 43, "rpId": "localhost"})
    response = passkey_flows.post_json(client, "/passkeys/signin/verify", {"credential": forged}, token)
    assert error_of(response) == "verification_failed"


def test_an_unknown_credential_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account) -> None:
    stranger = SoftAuthenticator()
    stranger.create({"rp": {"id": "localhost"}, "user": {"id": "eA"}, "challenge": "AAAA"})
    response = passkey_flows.sign_in(client, stranger)
    assert error_of(response) == "unknown_credential"


def test_a_usernameless_assertion_without_a_user_handle_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    response = passkey_flows.sign_in(client, authenticator, user_handle=False)
    assert error_of(response) == "unknown_credential"


def test_an_assertion_without_user_verification_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    authenticator.user_verified = False
    response = passkey_flows.sign_in(client, authenticator)
    assert error_of(response) == "verification_failed"


def test_a_signature_counter_that_goes_backwards_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    assert passkey_flows.sign_in(client, authenticator).status_code == 200
    sign_out(client)
    authenticator.credentials[0].sign_count = 0  # a clone still at the old count
    response = passkey_flows.sign_in(client, authenticator)
    assert error_of(response) == "sign_count"
    assert browser_session(client, db_session) is None
    db_session.expire_all()
    assert db_session.get(Passkey, authenticator.credentials[0].id).sign_count == 1  # type: ignore[union-attr]


def test_an_authenticator_without_a_counter_signs_in_again_and_again(
        client: FlaskClient, db_session: Session, signed_in: Account) -> None:
    counterless = SoftAuthenticator(counter_step=0)
    passkey_flows.register(client, counterless)
    for _ in range(2):
        sign_out(client)
        assert passkey_flows.sign_in(client, counterless).status_code == 200


def test_a_passkey_whose_backup_eligibility_changes_is_refused(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    authenticator.backup_eligible = True
    response = passkey_flows.sign_in(client, authenticator)
    assert error_of(response) == "verification_failed"


def test_a_passkey_of_a_locked_account_cannot_sign_in(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    db_session.execute(update(Account).where(Account.id == with_passkey.id).values(status="locked"))
    db_session.commit()
    response = passkey_flows.sign_in(client, authenticator)
    assert error_of(response) == "unknown_credential"


def test_malformed_credentials_are_refused_with_a_clear_error(
        client: FlaskClient, with_passkey: Account) -> None:
    for credential in (None, "text", {"id": "x"}, {"id": "x", "rawId": "x", "type": "public-key", "response": {}}):
        token = flows.csrf_token(client)
        passkey_flows.options(client, "signin", token)
        response = passkey_flows.post_json(client, "/passkeys/signin/verify", {"credential": credential}, token)
        assert error_of(response) == "invalid_request"


# --- CSRF and request shape ----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["register", "signin", "confirm"])
@pytest.mark.parametrize("step", ["options", "verify"])
def test_ceremony_endpoints_refuse_a_missing_or_wrong_csrf_header(
        client: FlaskClient, signed_in: Account, kind: str, step: str) -> None:
    flows.csrf_token(client)
    missing = client.post(f"/passkeys/{kind}/{step}", json={})
    wrong = client.post(f"/passkeys/{kind}/{step}", json={}, headers={"X-CSRF-Token": "guess"})
    assert missing.status_code == wrong.status_code == 403
    assert missing.get_json()["error"] == "invalid_csrf_token"


def test_ceremony_endpoints_take_json_only(client: FlaskClient, signed_in: Account) -> None:
    token = flows.csrf_token(client)
    response = client.post("/passkeys/signin/options", data={"csrf_token": token}, headers={"X-CSRF-Token": token})
    assert response.status_code == 415


def test_ceremonies_for_a_signed_in_citizen_need_a_session(client: FlaskClient) -> None:
    token = flows.csrf_token(client)
    response = passkey_flows.post_json(client, "/passkeys/register/options", {}, token)
    assert response.status_code == 401 and response.get_json()["error"] == "not_signed_in"


# --- managing passkeys ---------------------------------------------------------------------

def test_the_passkeys_page_needs_a_session(client: FlaskClient) -> None:
    response = client.get("/passkeys")
    assert response.status_code == 302 and response.headers["Location"].startswith("/signin")


def test_the_passkeys_page_lists_each_passkey_with_when_it_was_added_and_used(
        client: FlaskClient, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    passkey_flows.sign_in(client, authenticator)
    page = client.get("/passkeys").get_data(as_text=True)
    assert "My phone" in page and "Last used" in page and "Not used yet" not in page
    assert 'id="add-passkey"' in page


def test_the_add_page_has_a_register_button_for_the_script(client: FlaskClient, signed_in: Account) -> None:
    page = client.get("/passkeys/add?next=/account").get_data(as_text=True)
    assert 'id="passkey-register"' in page and 'data-next="/account"' in page
    assert 'data-passkey="create"' in page and "<noscript>" in page


def test_next_may_only_be_a_path_on_this_service(client: FlaskClient, signed_in: Account) -> None:
    for target in ("https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)"):
        page = client.get("/passkeys/add", query_string={"next": target}).get_data(as_text=True)
        assert "data-next" not in page


def test_a_passkey_can_be_renamed(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    flows.sign_in(client, with_passkey.email, CITIZEN_PASSWORD)
    path = f"/passkeys/{authenticator.credentials[0].id}/rename"
    assert client.get(path).status_code == 200
    response = client.post(path, data={"name": "Kitchen tablet", "csrf_token": flows.csrf_token(client)})
    assert response.status_code == 302
    db_session.expire_all()
    assert db_session.get(Passkey, authenticator.credentials[0].id).name == "Kitchen tablet"  # type: ignore[union-attr]


def test_a_passkey_needs_a_name(client: FlaskClient, with_passkey: Account,
                                authenticator: SoftAuthenticator) -> None:
    flows.sign_in(client, with_passkey.email, CITIZEN_PASSWORD)
    path = f"/passkeys/{authenticator.credentials[0].id}/rename"
    response = client.post(path, data={"name": "   ", "csrf_token": flows.csrf_token(client)})
    assert response.status_code == 400 and "Enter a name for your passkey" in response.get_data(as_text=True)


def test_another_citizens_passkey_cannot_be_renamed_or_removed(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    other = flows_citizen(db_session, "nosy")
    flows.sign_in(client, other.email, CITIZEN_PASSWORD)
    credential_id = authenticator.credentials[0].id
    assert client.get(f"/passkeys/{credential_id}/rename").status_code == 404
    assert client.post(f"/passkeys/{credential_id}/remove",
                       data={"decision": "remove", "csrf_token": flows.csrf_token(client)}).status_code == 404
    assert passkey_count(db_session) == 1


def test_a_passkey_can_be_removed_after_using_a_passkey(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    passkey_flows.sign_in(client, authenticator)
    path = f"/passkeys/{authenticator.credentials[0].id}/remove"
    assert "Remove passkey" in client.get(path).get_data(as_text=True)
    response = client.post(path, data={"decision": "remove", "csrf_token": flows.csrf_token(client)})
    assert response.status_code == 302 and response.headers["Location"] == "/passkeys?removed=1"
    assert passkey_count(db_session) == 0


def test_adding_or_removing_passkeys_needs_one_of_them_when_the_citizen_has_any(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    flows.sign_in(client, with_passkey.email, CITIZEN_PASSWORD)  # Cl: password only
    assert client.get("/passkeys/add").headers["Location"].startswith("/signin/passkey?next=")
    path = f"/passkeys/{authenticator.credentials[0].id}/remove"
    refused = client.post(path, data={"decision": "remove", "csrf_token": flows.csrf_token(client)})
    assert refused.headers["Location"].startswith("/signin/passkey?next=")
    response = passkey_flows.post_json(client, "/passkeys/register/options", {})
    assert error_of(response) == "step_up_required"
    assert passkey_count(db_session) == 1


def test_after_using_a_passkey_the_citizen_returns_to_where_they_were(
        client: FlaskClient, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    flows.sign_in(client, with_passkey.email, CITIZEN_PASSWORD)
    location = client.get("/passkeys/add").headers["Location"]
    next_path = flows.query(location)["next"]
    token, credential = passkey_flows.assertion(client, authenticator, "confirm")
    response = passkey_flows.post_json(client, "/passkeys/confirm/verify",
                                       {"credential": credential, "next": next_path}, token)
    assert response.get_json() == {"redirect": "/passkeys/add"}
    assert client.get("/passkeys/add").status_code == 200


def test_the_only_passkey_of_a_citizen_without_a_password_cannot_be_removed(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    db_session.execute(update(Account).where(Account.id == with_passkey.id).values(password_hash=None))
    db_session.commit()
    passkey_flows.sign_in(client, authenticator)
    path = f"/passkeys/{authenticator.credentials[0].id}/remove"
    response = client.post(path, data={"decision": "remove", "csrf_token": flows.csrf_token(client)})
    assert response.status_code == 409
    assert "cannot remove your only passkey" in response.get_data(as_text=True)
    assert passkey_count(db_session) == 1


def test_a_citizen_without_a_password_may_remove_one_of_two_passkeys(
        db_session: Session, citizen: Account) -> None:
    citizen.password_hash = None
    for name in ("one", "two"):
        db_session.add(Passkey(credential_id=name, account_id=citizen.id, public_key=b"k", aaguid="0" * 36,
                               name=name))
    db_session.flush()
    passkeys.remove_passkey(db_session, citizen.id, "one")
    with pytest.raises(PasskeyError) as refused:
        passkeys.remove_passkey(db_session, citizen.id, "two")
    assert refused.value.error == "last_credential"


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


# --- helpers -------------------------------------------------------------------------------

def flows_citizen(db_session: Session, label: str) -> Account:
    account = create_account(db_session, email=f"{label}-{id(db_session)}@example.com", given_name="Grace",
                             family_name="Hopper", password=CITIZEN_PASSWORD)
    db_session.commit()
    return account


def credential_challenge(credential: dict[str, Any]) -> str:
    return str(json.loads(unb64url(credential["response"]["clientDataJSON"]))["challenge"])
