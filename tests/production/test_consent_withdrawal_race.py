"""A consent withdrawn while a token is being issued under it (PostgreSQL, real concurrent
transactions; consent-ledger.md, protocol.md): the withdrawal waits for the issuance, then revokes
what it issued; an issuance that waited for a withdrawal is refused. Never a live token, or a
``disclosure`` entry, after ``consent.withdrawn``."""

from __future__ import annotations

import secrets
import threading
import time

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from consent.consents import consented_scopes, record_decision, record_use, withdraw_consent
from consent.errors import ConsentMissing
from consent.models import Consent, LedgerEntry
from idp.accounts import create_account
from idp.consent_ledger import agency_tokens, ledger_for, record_disclosure
from idp.models import Account, Client, TokenFamily
from idp.oauth.tokens import lock_family, start_family
from store.db import utcnow
from tests.production.conftest import Cluster

SCOPE = "openid email"


def citizen_who_consented(cluster: Cluster) -> str:
    services = cluster.services
    with services.sessions.begin() as session:
        account = create_account(session, email=f"race-{secrets.token_hex(4)}@example.com", given_name="Rae",
                                 family_name="Smith", password="correct horse battery staple 9")
        record_decision(session, account.id, cluster.agency_id, {"email"}, set(), client_id=cluster.rp.client_id,
                        ledger=ledger_for(services.settings, services.keyring))
        record_use(session, account.id, cluster.agency_id)  # a token a moment ago: "last used" is fresh
        return account.id


def withdraw_in_thread(cluster: Cluster, account_id: str) -> tuple[threading.Thread, threading.Event]:
    services, done = cluster.services, threading.Event()

    def withdraw() -> None:
        with services.sessions.begin() as session:
            withdraw_consent(session, account_id, cluster.agency_id, revoke_tokens=agency_tokens,
                             ledger=ledger_for(services.settings, services.keyring))
        done.set()

    thread = threading.Thread(target=withdraw)
    thread.start()
    return thread, done


def test_a_withdrawal_waits_for_a_token_being_issued_then_revokes_it(cluster: Cluster) -> None:
    services, account_id = cluster.services, citizen_who_consented(cluster)
    issuing = services.sessions()
    try:
        assert consented_scopes(issuing, account_id, cluster.agency_id, SCOPE.split()) == set(SCOPE.split())
        family = start_family(issuing, services.settings, client_id=cluster.rp.client_id, account_id=account_id,
                              session_id=None, scope=SCOPE, claims_request=None, auth_time=utcnow(), acr="Cl",
                              amr=["pwd"])
        record_disclosure(issuing, ledger_for(services.settings, services.keyring),
                          issuing.get(Client, cluster.rp.client_id), issuing.get(Account, account_id), SCOPE)
        thread, done = withdraw_in_thread(cluster, account_id)
        assert not done.wait(1.0), "the withdrawal must wait for the token being issued"
        issuing.commit()
    finally:
        issuing.close()
    thread.join(timeout=10)
    assert done.is_set()
    with services.sessions() as session:
        assert session.get(TokenFamily, family.id).revoked_at is not None  # type: ignore[union-attr]
        kinds = list(session.scalars(select(LedgerEntry.type).order_by(LedgerEntry.seq.desc()).limit(2)))
    assert kinds == ["consent.withdrawn", "disclosure"]  # newest first: the disclosure came before


def wait_until_a_transaction_waits_for_a_lock(session: Session, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND datname = current_database()")
    # Its own connection, autocommit: pg_stat_activity is read afresh by each transaction only.
    with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
        while watcher.scalar(waiting) == 0:
            assert time.monotonic() < deadline, "no transaction ever waited for a lock"
            time.sleep(0.02)


def test_a_withdrawal_and_a_refresh_of_the_same_family_do_not_deadlock(cluster: Cluster) -> None:
    """A refresh locks its family, then re-checks the consent (shared). The withdrawal locks the
    families before the consent row, so it waits for the refresh instead of deadlocking with it."""
    services, account_id = cluster.services, citizen_who_consented(cluster)
    with services.sessions.begin() as session:
        family = start_family(session, services.settings, client_id=cluster.rp.client_id, account_id=account_id,
                              session_id=None, scope=SCOPE, claims_request=None, auth_time=utcnow(), acr="Cl",
                              amr=["pwd"])
    refreshing = services.sessions()
    try:
        lock_family(refreshing, family.id)  # as RefreshTokenGrant.authenticate_refresh_token does
        thread, done = withdraw_in_thread(cluster, account_id)
        wait_until_a_transaction_waits_for_a_lock(refreshing)
        assert not done.is_set(), "the withdrawal must wait for the refresh"
        # PostgreSQL reports a deadlock after deadlock_timeout (1 s): a wait here would be one.
        refreshing.execute(text("SET LOCAL lock_timeout = '3s'"))
        assert consented_scopes(refreshing, account_id, cluster.agency_id, SCOPE.split()) == set(SCOPE.split())
        refreshing.commit()
    finally:
        refreshing.close()
    thread.join(timeout=10)
    assert done.is_set(), "the withdrawal failed"
    with services.sessions() as session:
        assert session.get(TokenFamily, family.id).revoked_at is not None  # type: ignore[union-attr]


def test_a_token_request_that_waited_for_a_withdrawal_is_refused(cluster: Cluster) -> None:
    services, account_id = cluster.services, citizen_who_consented(cluster)
    withdrawing = services.sessions()
    outcome: list[BaseException | set[str]] = []
    try:
        withdraw_consent(withdrawing, account_id, cluster.agency_id, revoke_tokens=agency_tokens,
                         ledger=ledger_for(services.settings, services.keyring))

        def issue() -> None:
            with services.sessions() as session:
                try:
                    outcome.append(consented_scopes(session, account_id, cluster.agency_id, SCOPE.split()))
                except ConsentMissing as refused:
                    outcome.append(refused)

        thread = threading.Thread(target=issue)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the token request must wait for the withdrawal"
        withdrawing.commit()
    finally:
        withdrawing.close()
    thread.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], ConsentMissing)


def test_token_requests_of_one_citizen_neither_wait_for_nor_deadlock_each_other(cluster: Cluster) -> None:
    services, account_id = cluster.services, citizen_who_consented(cluster)
    with services.sessions.begin() as session:  # "last used" is stale: both requests want to record it
        session.execute(update(Consent).where(Consent.account_id == account_id).values(last_used_at=None))
    first, second = services.sessions(), services.sessions()
    try:
        for session in (first, second):
            session.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would fail, not hang
            consented_scopes(session, account_id, cluster.agency_id, SCOPE.split())  # each holds it shared
        record_use(first, account_id, cluster.agency_id)  # skipped: the second holds the row
        record_use(second, account_id, cluster.agency_id)
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
