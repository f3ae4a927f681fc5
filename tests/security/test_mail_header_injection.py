"""Mail header injection (and the worker stall it caused): an email address or a name with CR/LF or
another control character is refused with a form error at every entry point, so it never reaches
the outbox, an email header or a subject."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.contact_details import EMAIL_FORMAT, email_address, name_problem
from consent.delegations import Terms
from consent.errors import DelegationInvalid
from consent.ledger import Ledger
from idp import worker
from idp.cli import main
from idp.dependents import create_dependent
from idp.models import Account, OutboxMessage
from idp.outbox import open_body, queue_email
from idp.services import Services
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.delegation_flows import delegate, person
from tests.idp.test_outbox import Inbox, smtp  # noqa: F401  # the real SMTP receiver fixture

INJECTED = "victim@example.com\r\nBcc:attacker@evil.example"  # no space: the old checks refused only spaces
BAD_ADDRESSES = [INJECTED, "victim@example.com\nSubject: hi", "vic\x00tim@example.com", "vic tim@example.com",
                 "victim@exam\tple.com", "<victim@example.com>", "victim@example..com", "x" * 65 + "@example.com",
                 "victim@" + "a" * 64 + ".example", "victim@-example.com", "victim@example", "victim"]
BAD_NAMES = ["Ada\r\nBcc: attacker@evil.example", "Ada\nLovelace", "Ada\x00", "Ada\u2028Lovelace", "Ada\u202eecalevol"]
NAME_ERROR = "Enter the name without line breaks or control characters"


def _queued(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


def _signed_in(app: Flask, account: Account) -> FlaskClient:
    client = app.test_client()
    flows.sign_in(client, account.email, CITIZEN_PASSWORD)
    return client


def _post(client: FlaskClient, path: str, data: dict[str, Any], page: str | None = None) -> Any:
    return client.post(path, data=data | {"csrf_token": flows.csrf_token(client, page or path)})


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_the_one_validator_refuses_what_cannot_be_a_mail_address(address: str) -> None:
    with pytest.raises(ValueError, match=re.escape(EMAIL_FORMAT)):
        email_address(address)


@pytest.mark.parametrize("address", ["ada@example.com", " Ada.Lovelace+idp@Mail.Example.GOV.uk ",
                                     "o'brien@example.ie", "a_b-c@sub-domain.example.com"])
def test_ordinary_addresses_are_accepted_trimmed_and_lower_cased(address: str) -> None:
    assert email_address(address) == address.strip().lower()


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_with_line_breaks_or_control_characters_are_refused(name: str) -> None:
    assert name_problem(name) == NAME_ERROR
    assert name_problem("Zoë O'Brien-Nakamura") is None
    assert name_problem("می\u200cخواهم") is None  # ZWNJ joins letters in some scripts: allowed


@pytest.mark.parametrize("path", ["/signup", "/recover"])
def test_signing_up_or_recovering_with_an_injected_address_is_a_form_error(client: FlaskClient, db_session: Session,
                                                                           path: str) -> None:
    response = _post(client, path, {"email": INJECTED})
    assert response.status_code == 400
    assert "email address" in response.get_data(as_text=True)  # the field's error, shown on the form
    assert _queued(db_session) == 0


def test_every_delegation_form_refuses_an_injected_address(app: Flask, db_session: Session, ledger: Ledger) -> None:
    mary, carol = person(db_session, "Mary"), person(db_session, "Carol")
    mine = delegate(db_session, ledger, mary, carol, Terms(type="carer", mode="act", may_delegate_onward=True))
    before = _queued(db_session)
    principal, helper = _signed_in(app, mary), _signed_in(app, carol)
    forms = [
        (principal, "/account/delegates/invite",
         {"type": "carer", "mode": "act", "services": "all", "details": "all"}, EMAIL_FORMAT),
        (helper, f"/account/acting-for/{mine.id}/pass-on", {"mode": "act", "services": "all", "details": "all"},
         EMAIL_FORMAT),
        (helper, "/account/acting-for/request", {"type": "carer", "mode": "act", "services": "all",
                                                 "details": "all"}, "Enter the email address of the person"),
    ]
    for client, path, fields, error in forms:
        response = _post(client, path, fields | {"email": INJECTED})
        assert response.status_code == 400, path
        assert error in response.get_data(as_text=True), path
    assert _queued(db_session) == before


def test_handing_a_child_profile_to_an_injected_address_is_a_form_error(app: Flask, db_session: Session,
                                                                        ledger: Ledger) -> None:
    parent = person(db_session, "Pam")
    today = dt.date.today()
    child = create_dependent(db_session, parent, given_name="Kit", family_name="Smith", parent_age=16, ledger=ledger,
                             birthdate=today.replace(year=today.year - 14) - dt.timedelta(days=30))
    db_session.commit()
    path = f"/account/acting-for/{child.id}/own-account"
    response = _post(_signed_in(app, parent), path, {"email": INJECTED})
    assert response.status_code == 400 and EMAIL_FORMAT in response.get_data(as_text=True)
    assert _queued(db_session) == 0


def test_the_domain_refuses_an_injected_invitation_address_whoever_calls_it(db_session: Session,
                                                                            ledger: Ledger) -> None:
    mary = person(db_session, "Mary")
    with pytest.raises(DelegationInvalid, match=re.escape(EMAIL_FORMAT)):
        lifecycle.invite_delegate(db_session, mary.id, INJECTED, Terms(type="carer"), ledger=ledger)


@pytest.mark.parametrize("name", BAD_NAMES[:2])
def test_names_that_reach_email_subjects_are_refused_on_every_form(app: Flask, client: FlaskClient,
                                                                   db_session: Session, name: str) -> None:
    _post(client, "/signup", {"email": "grace-names@example.com"})
    sent = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "grace-names@example.com")).one()
    code = re.search(r"\b(\d{6})\b", open_body(db_session, sent)).group(1)  # type: ignore[union-attr]
    _post(client, "/signup/code", {"code": code}, page="/signup")
    details = {"family_name": "Hopper", "method": "password", "password": "a long enough passphrase 42"}
    signup = _post(client, "/signup/details", details | {"given_name": name}, page="/signup")
    assert signup.status_code == 400 and NAME_ERROR in signup.get_data(as_text=True)
    parent = _signed_in(app, person(db_session, "Pam"))
    profile = _post(parent, "/account", {"given_name": "Pam", "family_name": name})
    assert profile.status_code == 400 and NAME_ERROR in profile.get_data(as_text=True)
    child = _post(parent, "/account/acting-for/child", {"given_name": name, "family_name": "Smith", "day": "1",
                                                        "month": "1", "year": str(dt.date.today().year - 5),
                                                        "confirm": "yes"})
    assert child.status_code == 400 and NAME_ERROR in child.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Account).where(Account.given_name == name)) == 0


def test_the_cli_refuses_injected_addresses_and_names(tmp_path: Path) -> None:
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    create = ["user", "create", "--family-name", "Example", "--password-stdin"]
    for extra in (["--email", INJECTED, "--given-name", "Dora"], ["--email", "dora@example.com", "--given-name",
                                                                  BAD_NAMES[0]]):
        refused = runner.invoke(main, create + extra, env=env, input="a long enough password\n")
        assert refused.exit_code == 1 and ("email address" in refused.output or NAME_ERROR in refused.output)
    attorney = runner.invoke(main, ["delegation", "create-attorney", "--principal-email", INJECTED,
                                    "--attorney-email", "a@example.com", "--reference", "R-1", "--checked-by", "sam"],
                             env=env)
    assert attorney.exit_code == 1 and EMAIL_FORMAT in attorney.output


def test_a_poison_message_already_in_the_outbox_is_given_up_and_the_pass_runs_on(
        app: Flask, db_session: Session, smtp: tuple[Inbox, str], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Addresses queued before validation existed: the worker gives such a message up (never leased
    again) and the pass still sends the others and runs its scheduled jobs."""
    inbox, url = smtp
    poison = queue_email(db_session, to=INJECTED, subject="s", body="b")
    queue_email(db_session, to="next@example.com", subject="s", body="b")
    db_session.commit()
    ran: list[str] = []
    monkeypatch.setattr(worker, "tick_ledger", lambda _services: ran.append("tick_ledger"))
    services: Services = app.extensions["idp"]
    report = worker.run_once(dataclasses.replace(services, settings=dataclasses.replace(services.settings,
                                                                                        smtp_url=url)))
    assert report.failed_jobs == [] and ran == ["tick_ledger"]
    assert [mail["To"] for mail in inbox.messages] == ["next@example.com"]
    db_session.refresh(poison)
    assert poison is not None and poison.failed_at is not None


def test_an_account_whose_address_predates_the_strict_check_can_still_sign_in(
        client: FlaskClient, db_session: Session) -> None:
    """Sign-in sends nothing to the typed address, so it does not apply the strict check that
    guards what we send to: an older account (here a non-ASCII address) still signs in, while an
    address with a line break is still a form error."""
    from idp.passwords import hash_password

    account = Account(email="josé@example.com", given_name="José", family_name="Núñez",
                      password_hash=hash_password(CITIZEN_PASSWORD))
    db_session.add(account)
    db_session.commit()
    assert flows.sign_in(client, "josé@example.com", CITIZEN_PASSWORD).status_code == 302
    stranger = client.application.test_client()
    refused = stranger.post("/signin", data={"email": INJECTED, "password": CITIZEN_PASSWORD,
                                             "csrf_token": flows.csrf_token(stranger)})
    assert refused.status_code == 400 and "Enter your email address" in refused.get_data(as_text=True)
