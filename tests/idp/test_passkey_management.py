"""The citizen's passkeys page: list, add, rename, remove; never the last credential."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp import passkeys
from idp.models import Account, Passkey
from idp.passkeys import PasskeyError
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows, passkey_flows
from tests.idp.authenticator import SoftAuthenticator
from tests.idp.passkey_flows import (
    another_citizen,
    error_of,
    passkey_count,
    register_then_sign_out,
)


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator()


@pytest.fixture
def with_passkey(client: FlaskClient, signed_in: Account, authenticator: SoftAuthenticator) -> Account:
    """A citizen with a password and one passkey, signed out again."""
    return register_then_sign_out(client, signed_in, authenticator)


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
    other = another_citizen(db_session, "nosy")
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
