"""``idp delegation``: attorneys with their checked reference, safeguarding suspension, list, tick."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from consent import delegations as lifecycle
from consent.delegations import Terms
from idp.app import build_services
from idp.cli import main
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.models import Account

PASSWORD = "a long enough password\n"


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"}
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)

    assert invoke("db", "upgrade").exit_code == 0
    for email, name in (("donor@example.com", "Dora"), ("attorney@example.com", "Arthur")):
        assert invoke("user", "create", "--email", email, "--given-name", name, "--family-name", "Example",
                      "--password-stdin", stdin=PASSWORD).exit_code == 0
    return invoke


def lines(result: Result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.strip().splitlines() if line.startswith("{")]


def test_attorney_is_created_with_its_reference_and_checker(run) -> None:  # type: ignore[no-untyped-def]
    made = lines(run("delegation", "create-attorney", "--principal-email", "donor@example.com",
                     "--attorney-email", "attorney@example.com", "--reference", "LPA 7000-1234-5678",
                     "--checked-by", "sam.operator"))[0]
    assert made["status"] == "active"
    listed = lines(run("delegation", "list", "--principal-email", "donor@example.com"))
    assert listed[0]["type"] == "attorney" and listed[0]["evidence_reference"] == "LPA 7000-1234-5678"
    assert listed[0]["evidence_checked_by"] == "sam.operator"
    assert listed[0]["status_changed_by"] == "operator:sam.operator"


def test_attorney_needs_a_real_person_and_reference(run) -> None:  # type: ignore[no-untyped-def]
    for args in (("--principal-email", "nobody@example.com", "--attorney-email", "attorney@example.com"),
                 ("--principal-email", "donor@example.com", "--attorney-email", "donor@example.com")):
        result = run("delegation", "create-attorney", *args, "--reference", "X", "--checked-by", "sam")
        assert result.exit_code != 0
    blank = run("delegation", "create-attorney", "--principal-email", "donor@example.com", "--attorney-email",
                "attorney@example.com", "--reference", " ", "--checked-by", "sam")
    assert blank.exit_code != 0
    bad_date = run("delegation", "create-attorney", "--principal-email", "donor@example.com", "--attorney-email",
                   "attorney@example.com", "--reference", "R", "--checked-by", "sam", "--ends", "31/02/2030")
    assert bad_date.exit_code != 0 and "YYYY-MM-DD" in bad_date.output


def test_suspend_keeps_the_reason_from_the_delegate_and_can_resume(run) -> None:  # type: ignore[no-untyped-def]
    made = lines(run("delegation", "create-attorney", "--principal-email", "donor@example.com",
                     "--attorney-email", "attorney@example.com", "--reference", "R-1", "--checked-by", "sam"))[0]
    suspended = lines(run("delegation", "suspend", made["id"], "--reason", "safeguarding referral 42",
                          "--operator", "kim", "--no-notify"))[0]
    assert suspended["status"] == "suspended"
    listed = lines(run("delegation", "list", "--status", "suspended"))[0]
    assert listed["status_note"] == "safeguarding referral 42" and listed["status_reason"] == "suspended_by_operator"
    outbox = run("outbox", "list").stdout
    assert "safeguarding" not in outbox and "attorney@example.com" not in outbox  # --no-notify: nobody told
    again = run("delegation", "suspend", made["id"], "--reason", "again", "--operator", "kim")
    assert again.exit_code != 0 and "suspended" in again.output
    assert lines(run("delegation", "resume", made["id"], "--operator", "kim"))[0]["status"] == "active"
    assert run("delegation", "suspend", "forged", "--reason", "x", "--operator", "kim").exit_code != 0


def test_tick_runs_and_reports(run) -> None:  # type: ignore[no-untyped-def]
    report = lines(run("delegation", "tick"))[0]
    assert set(report) == {"expired", "lapsed", "unused", "reminded", "came_of_age"}


def test_an_operator_renews_an_attorney_delegation_only(run) -> None:  # type: ignore[no-untyped-def]
    made = lines(run("delegation", "create-attorney", "--principal-email", "donor@example.com",
                     "--attorney-email", "attorney@example.com", "--reference", "R-2", "--checked-by", "sam",
                     "--ends", f"{dt.date.today().year + 1}-06-30"))[0]
    new_end = f"{dt.date.today().year + 3}-06-30"
    renewed = lines(run("delegation", "renew", made["id"], "--ends", new_end, "--operator", "kim"))
    assert renewed[0]["status"] == "active"
    listed = lines(run("delegation", "list", "--principal-email", "donor@example.com"))[0]
    assert listed["ends_at"].startswith(new_end) and listed["status_changed_by"] == "operator:kim"
    past = run("delegation", "renew", made["id"], "--ends", "2001-01-01", "--operator", "kim")
    assert past.exit_code != 0 and "future" in past.output
    assert run("delegation", "renew", "forged", "--ends", new_end, "--operator", "kim").exit_code != 0


def test_an_operator_cannot_renew_a_carer_delegation(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env({"IDP_INSTANCE_PATH": str(tmp_path),
                                  "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"})
    services = build_services(settings)
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        ledger = ledger_for(settings, services.keyring)
        donor, helper = (session.scalars(select(Account).where(Account.email == email)).one()
                         for email in ("donor@example.com", "attorney@example.com"))
        made, token = lifecycle.invite_delegate(session, donor.id, helper.email, Terms(type="carer"), ledger=ledger)
        lifecycle.accept_invitation(session, token, helper.id, helper.email, ledger=ledger, effects=None)
        carer_id = made.id
    services.engine.dispose()
    refused = run("delegation", "renew", carer_id, "--ends", f"{dt.date.today().year + 1}-06-30", "--operator", "kim")
    assert refused.exit_code != 0 and "renewed by the person it serves" in refused.output
