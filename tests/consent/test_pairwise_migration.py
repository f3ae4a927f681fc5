"""Revision 0010 on a database whose ledger already has entries (docs/consent-ledger.md "Migrating
to pairwise pseudonyms"): nothing appended before is rewritten, old entries keep their one legacy
pseudonym, new ones are pairwise, the citizen's record finds both, ``idp ledger verify`` passes,
and erasure unlinks both. A self-registered ``ledger:audit`` does not survive the upgrade.

On SQLite a file of its own; on PostgreSQL a schema of its own (the suite's database is at head).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import events
from consent.audit import audit
from consent.consents import record_decision
from consent.erasure import erase_from_ledger
from consent.events import EventType, format_time
from consent.ledger import Ledger
from consent.models import LedgerEntry
from consent.pseudonyms import pseudonym_for
from idp.app import build_services
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.models import Account, Client
from idp.registry import create_agency
from idp.services import Services
from store.db import make_engine, utcnow
from store.migrate import upgrade

BEFORE = "0008"  # the head before pairwise pseudonyms
SCHEMA = "pairwise_migration"


@pytest.fixture
def old_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database migrated to BEFORE only."""
    if not database_url.startswith("postgresql"):
        url = f"sqlite:///{tmp_path / 'before.sqlite'}"
        upgrade(url, BEFORE)
        yield url
        return
    admin = make_engine(database_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
    url = sa.make_url(database_url).update_query_dict({"options": f"-csearch_path={SCHEMA}"})
    rendered = url.render_as_string(hide_password=False)
    upgrade(rendered, BEFORE)
    try:
        yield rendered
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {SCHEMA} CASCADE"))
        admin.dispose()


@pytest.fixture
def services(old_database: str, tmp_path: Path) -> Iterator[Services]:
    settings = Settings.from_env(environ={}, issuer="http://localhost", instance_path=tmp_path,
                                 database_url=old_database, key_cache_seconds=1)
    built = build_services(settings)
    yield built
    built.engine.dispose()


def _as_before(table: sa.Table, *added: str) -> sa.Table:
    """The table as BEFORE had it: without the columns 0010 adds."""
    return sa.Table(table.name, sa.MetaData(), *[column._copy() for column in table.c if column.name not in added])


def _old_account(session: Session, legacy: str) -> str:
    account_id = secrets.token_hex(8)
    session.execute(sa.insert(_as_before(Account.__table__, "ledger_secret")).values(  # type: ignore[arg-type]
        id=account_id, email=f"{account_id}@example.com", given_name="Old", family_name="Entries",
        ledger_pseudonym=legacy))
    return account_id


def _old_consent(session: Session, ledger: Ledger, legacy: str, agency_id: str) -> None:
    """What the code before 0010 appended: the one pseudonym, whatever the agency."""
    ledger.append(session, EventType.CONSENT_GRANTED, {
        "subject": legacy, "agency": agency_id, "client": "old-client", "scopes": ["email"], "denied": [],
        "purpose": None, "expires": format_time(utcnow() + dt.timedelta(days=30))})


def _leaves(session: Session, below: int) -> list[str]:
    return list(session.scalars(sa.select(LedgerEntry.leaf).where(LedgerEntry.seq < below).order_by(LedgerEntry.seq)))


def test_old_entries_stay_as_they_were_and_new_ones_are_pairwise(
        services: Services, old_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ledger_for(services.settings, services.keyring)
    legacy = secrets.token_urlsafe(16)
    monkeypatch.setattr(events, "ENTRY_VERSION", 1)  # as the code before 0010 wrote them
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        a, b = (create_agency(session, name)[0] for name in ("Agency A", "Agency B"))
        agency_ids = (a.id, b.id)
        account_id = _old_account(session, legacy)
        for agency_id in agency_ids:
            _old_consent(session, ledger, legacy, agency_id)
        ledger.checkpoint(session)
        old_size = ledger.size(session)
        old_leaves = _leaves(session, old_size)

    upgrade(old_database)
    monkeypatch.undo()

    with services.sessions.begin() as session:
        for agency_id in agency_ids:
            record_decision(session, account_id, agency_id, granted={"email"}, denied=set(), ledger=ledger,
                            client_id="new-client")
        ledger.checkpoint(session)
    with services.sessions.begin() as session:
        assert _leaves(session, old_size) == old_leaves  # appended after, never rewritten
        record = [item.entry for item in ledger.record_of(session, account_id)]
        assert [entry["seq"] for entry in record] == list(range(old_size + 2))
        new_subjects = [entry["subject"] for entry in record[old_size:]]
        assert [(entry["v"], entry["subject"]) for entry in record[:old_size]] == [(1, legacy), (1, legacy)]
        assert [entry["v"] for entry in record[old_size:]] == [2, 2]
        assert new_subjects == [pseudonym_for(session, account_id, agency_id) for agency_id in agency_ids]
        assert len({legacy, *new_subjects}) == 3
        assert audit(session, ledger).ok

    verified = _idp(tmp_path, old_database, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    with services.sessions.begin() as session:
        erase_from_ledger(session, account_id, ledger=ledger)
        assert ledger.record_of(session, account_id) == []
        assert session.get(Account, account_id).ledger_pseudonym is None  # type: ignore[union-attr]
        assert ledger.entries_of(session, legacy) != []  # still there, tied to no one
        ledger.checkpoint(session)
        assert audit(session, ledger).ok


def test_a_self_registered_ledger_audit_does_not_survive_the_upgrade(services: Services,
                                                                    old_database: str) -> None:
    with services.sessions.begin() as session:
        agency, _token = create_agency(session, "Curious Agency")
        session.execute(sa.insert(_as_before(Client.__table__, "privileged_scopes")).values(  # type: ignore[arg-type]
            client_id="self-registered", agency_id=agency.id, name="Curious", token_endpoint_auth_method="none",
            redirect_uris=["https://curious.example/cb"], grant_types=["authorization_code"],
            scope="openid ledger:audit email"))
    upgrade(old_database)
    with services.sessions.begin() as session:
        stored = session.get(Client, "self-registered")
        assert stored is not None and stored.scope == "openid email" and stored.privileged_scopes == ""
        assert not stored.holds_privilege("ledger:audit")


def _idp(instance: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``idp`` command as an operator runs it, in a process of its own."""
    env = os.environ | {"IDP_INSTANCE_PATH": str(instance), "IDP_DATABASE_URL": database_url,
                        "IDP_ISSUER": "http://localhost"}
    command = [sys.executable, "-c", "from idp.cli import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
