"""Lost passkeys (sign-in.md "Account recovery"; idp/passkey_reset.py): a citizen signed in with
their password asks for their lost passkeys to be removed; a week later they are, and a new one
can be added; using a passkey meanwhile, or pressing "Keep my passkeys", cancels it."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.models import Account, OutboxMessage
from idp.worker import remove_lost_passkeys
from store.db import utcnow
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows, passkey_flows
from tests.idp.authenticator import SoftAuthenticator
from tests.idp.passkey_flows import passkey_count, register_then_sign_out


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator()


@pytest.fixture
def lost_it(client: FlaskClient, signed_in: Account, authenticator: SoftAuthenticator) -> Account:
    """A citizen with a password and one passkey, now signed in with the password alone."""
    register_then_sign_out(client, signed_in, authenticator)
    flows.sign_in(client, signed_in.email, CITIZEN_PASSWORD)
    return signed_in


def report(client: FlaskClient, confirm: str | None = "yes") -> object:
    data = {"csrf_token": flows.csrf_token(client, "/passkeys/lost")} | ({"confirm": confirm} if confirm else {})
    return client.post("/passkeys/lost", data=data)


def subjects(db_session: Session, account: Account) -> list[str]:
    return list(db_session.scalars(select(OutboxMessage.subject).where(OutboxMessage.recipient == account.email)))


def overdue(db_session: Session, account: Account) -> None:
    db_session.execute(update(Account).where(Account.id == account.id)
                       .values(passkeys_reset_at=utcnow() - dt.timedelta(minutes=1)))
    db_session.commit()


def test_lost_passkeys_are_removed_a_week_later_and_a_new_one_can_be_added(
        client: FlaskClient, db_session: Session, lost_it: Account) -> None:
    page = client.get("/passkeys").get_data(as_text=True)
    assert "I have lost all my passkeys" in page and 'id="add-passkey"' not in page
    assert report(client, confirm=None).status_code == 400  # must say yes
    assert report(client).status_code == 302  # type: ignore[attr-defined]
    db_session.expire_all()
    due = db_session.get(Account, lost_it.id).passkeys_reset_at  # type: ignore[union-attr]
    assert due is not None and dt.timedelta(days=6, hours=23) < due - utcnow() <= dt.timedelta(days=7)
    assert any("will be removed" in subject for subject in subjects(db_session, lost_it))
    assert "data-passkeys-reset" in client.get("/passkeys").get_data(as_text=True)
    assert client.get("/passkeys/add").status_code == 302  # still not before the week is over
    overdue(db_session, lost_it)
    assert client.get("/passkeys/add").status_code == 200  # removed now: a new one can be added
    assert passkey_count(db_session) == 0
    assert any("have been removed" in subject for subject in subjects(db_session, lost_it))
    assert passkey_flows.register(client, SoftAuthenticator()).status_code == 200


def test_using_a_passkey_cancels_the_removal(client: FlaskClient, db_session: Session, lost_it: Account,
                                            authenticator: SoftAuthenticator) -> None:
    assert report(client).status_code == 302  # type: ignore[attr-defined]  # a thief with the password
    passkey_flows.sign_out(client)
    assert passkey_flows.sign_in(client, authenticator).status_code == 200  # the owner
    db_session.expire_all()
    assert db_session.get(Account, lost_it.id).passkeys_reset_at is None  # type: ignore[union-attr]
    assert any("will not be removed" in subject for subject in subjects(db_session, lost_it))
    assert passkey_count(db_session) == 1


def test_keep_my_passkeys_cancels_it(client: FlaskClient, db_session: Session, lost_it: Account) -> None:
    assert report(client).status_code == 302  # type: ignore[attr-defined]
    kept = client.post("/passkeys/lost/cancel", data={"csrf_token": flows.csrf_token(client, "/passkeys")})
    assert kept.status_code == 302
    db_session.expire_all()
    assert db_session.get(Account, lost_it.id).passkeys_reset_at is None  # type: ignore[union-attr]


def test_the_worker_removes_passkeys_whose_week_is_over(app: Flask, client: FlaskClient, db_session: Session,
                                                        lost_it: Account) -> None:
    assert report(client).status_code == 302  # type: ignore[attr-defined]
    remove_lost_passkeys(app.extensions["idp"])
    assert passkey_count(db_session) == 1  # not yet
    overdue(db_session, lost_it)
    remove_lost_passkeys(app.extensions["idp"])
    assert passkey_count(db_session) == 0


def test_someone_signed_in_with_a_passkey_has_nothing_to_report(client: FlaskClient, signed_in: Account,
                                                                authenticator: SoftAuthenticator) -> None:
    register_then_sign_out(client, signed_in, authenticator)
    passkey_flows.sign_in(client, authenticator)
    assert client.get("/passkeys/lost").headers["Location"].endswith("/passkeys")


def test_asking_and_cancelling_over_and_over_sends_no_more_emails_than_the_cap(
        client: FlaskClient, db_session: Session, lost_it: Account) -> None:
    for _ in range(5):  # README: IDP_EMAILS_PER_ADDRESS_PER_HOUR, by default
        assert report(client).status_code == 302  # type: ignore[attr-defined]
        client.post("/passkeys/lost/cancel", data={"csrf_token": flows.csrf_token(client, "/passkeys")})
    refused = report(client)
    assert refused.status_code == 429  # type: ignore[attr-defined]
    assert "Wait 60 minutes and try again" in refused.get_data(as_text=True)  # type: ignore[attr-defined]
    db_session.expire_all()
    assert db_session.get(Account, lost_it.id).passkeys_reset_at is None  # type: ignore[union-attr]
