"""Every passkey response the relying party must refuse (WebAuthn Level 3 §7.1, §7.2, §13.4),
the single-use challenges, and the CSRF header of the ceremony endpoints; nothing half-saved."""

from __future__ import annotations

import datetime as dt

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from idp import passkeys
from idp.models import Account, Passkey, WebAuthnChallenge
from idp.passkeys import PasskeyError, RelyingParty
from idp.throttle import (
    CEREMONIES_PER_NETWORK,
    FREE_FAILURES,
    SIGN_IN_PER_NETWORK,
    DatabaseThrottle,
    ceremony_key,
    ip_key,
)
from store.db import utcnow
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows, passkey_flows
from tests.idp.authenticator import SoftAuthenticator
from tests.idp.passkey_flows import (
    browser_session,
    error_of,
    register_then_sign_out,
    sign_out,
)

RP = RelyingParty(id="localhost", origin="http://localhost", name="Test", challenge_ttl=300)


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator()


@pytest.fixture
def with_passkey(client: FlaskClient, signed_in: Account, authenticator: SoftAuthenticator) -> Account:
    """A citizen with a password and one passkey, signed out again."""
    return register_then_sign_out(client, signed_in, authenticator)


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


def test_failed_passkey_sign_ins_count_against_the_network_like_failed_passwords(
        client: FlaskClient, db_session: Session, with_passkey: Account, authenticator: SoftAuthenticator) -> None:
    network = ip_key("127.0.0.0/24")  # the test client's address, as sessions record it
    for _ in range(FREE_FAILURES["ip"] - 1):
        DatabaseThrottle(db_session).reserve(network, SIGN_IN_PER_NETWORK)
    db_session.commit()
    stranger = SoftAuthenticator()
    stranger.create({"rp": {"id": "localhost"}, "user": {"id": "eA"}, "challenge": "AAAA"})
    assert error_of(passkey_flows.sign_in(client, stranger)) == "unknown_credential"  # one failure too many
    blocked = passkey_flows.post_json(client, "/passkeys/signin/options", {})
    assert blocked.status_code == 429 and error_of(blocked) == "too_many_attempts"
    assert "Wait" in blocked.get_json()["message"]
    before = db_session.scalar(select(func.count()).select_from(WebAuthnChallenge))
    assert passkey_flows.post_json(client, "/passkeys/signin/options", {}).status_code == 429
    assert db_session.scalar(select(func.count()).select_from(WebAuthnChallenge)) == before  # nothing stored
    password = client.post("/signin", data={"email": with_passkey.email, "password": CITIZEN_PASSWORD,
                                            "csrf_token": flows.csrf_token(client, "/signin")})
    assert password.status_code == 429  # the same network's count


def test_one_network_cannot_start_passkey_ceremonies_without_end(client: FlaskClient, db_session: Session) -> None:
    starts = ceremony_key("127.0.0.0/24")
    for _ in range(FREE_FAILURES["ceremony"] - 1):
        DatabaseThrottle(db_session).reserve(starts, CEREMONIES_PER_NETWORK)
    db_session.commit()
    token = flows.csrf_token(client)
    assert passkey_flows.post_json(client, "/passkeys/signin/options", {}, token).status_code == 200  # the last one
    before = db_session.scalar(select(func.count()).select_from(WebAuthnChallenge))
    flood = passkey_flows.post_json(client, "/passkeys/signin/options", {}, token)
    assert flood.status_code == 429 and error_of(flood) == "too_many_attempts"
    assert db_session.scalar(select(func.count()).select_from(WebAuthnChallenge)) == before
