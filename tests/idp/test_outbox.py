"""The outbox and its worker: emails delivered to a real SMTP server, retried with backoff,
never sent twice, readable in development."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from consent.models import LedgerCheckpoint, LedgerEntry
from idp.app import build_services, create_app
from idp import worker
from idp.cli import main
from idp.config import Settings
from idp.db import utcnow
from idp.mail import SmtpSender, send_code
from idp.models import Account, OutboxMessage
from idp.outbox import MAX_ATTEMPTS, DeliveryError, deliver_due, queue_email
from idp.services import Services
from idp.worker import rotate_keys_if_due, run_jobs, tick_ledger
from keys.models import SigningKey
from tests.idp import flows
from tests.idp.flows import RegisteredClient


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, f"smtp://127.0.0.1:{port}"
    controller.stop()


def test_a_queued_email_reaches_a_real_smtp_server(db_session: Session, test_sessions: sessionmaker[Session],
                                                   smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    send_code(db_session, to="ada@example.com", code="123456", purpose="signup")
    db_session.commit()
    report = deliver_due(test_sessions, {"email": SmtpSender(url, "IdP <no-reply@example.gov>")})
    assert report.sent == 1
    [mail] = inbox.messages
    assert mail["To"] == "ada@example.com"
    assert "123456" in mail.get_payload()


def test_failed_deliveries_back_off_and_finally_give_up(db_session: Session,
                                                        test_sessions: sessionmaker[Session]) -> None:
    message = queue_email(db_session, to="x@example.com", subject="s", body="b")
    db_session.commit()

    def refuse(_message: OutboxMessage) -> None:
        raise DeliveryError("mail server said no")

    delays = []
    for _ in range(MAX_ATTEMPTS):
        deliver_due(test_sessions, {"email": refuse})
        db_session.refresh(message)
        delays.append((message.next_attempt_at - utcnow()).total_seconds())
        db_session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        db_session.commit()
    db_session.refresh(message)
    assert message.failed_at is not None and message.sent_at is None
    assert message.last_error == "DeliveryError: mail server said no"
    assert delays[1] > delays[0] > 0  # exponential backoff


def test_the_same_event_is_never_queued_twice(db_session: Session) -> None:
    first = queue_email(db_session, to="x@example.com", subject="s", body="b", dedupe_key="event-1")
    second = queue_email(db_session, to="x@example.com", subject="s", body="b", dedupe_key="event-1")
    assert first is not None and second is None


def test_a_sent_message_is_not_sent_again(db_session: Session, test_sessions: sessionmaker[Session]) -> None:
    queue_email(db_session, to="x@example.com", subject="s", body="b")
    db_session.commit()
    sent: list[str] = []
    deliver_due(test_sessions, {"email": lambda m: sent.append(m.id)})
    deliver_due(test_sessions, {"email": lambda m: sent.append(m.id)})
    assert len(sent) == 1


def test_worker_once_delivers_and_outbox_list_reads_messages(tmp_path: Path, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite'}",
           "IDP_SMTP_URL": url}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    created = runner.invoke(main, ["user", "create", "--email", "w@example.com", "--given-name", "W",
                                   "--family-name", "X", "--password-stdin"], env=env, input="long enough password\n")
    assert created.exit_code == 0, created.output
    services = build_services(Settings.from_env(env))
    with services.sessions.begin() as session:
        send_code(session, to="w@example.com", code="654321", purpose="recovery")
    listed = runner.invoke(main, ["outbox", "list", "--to", "w@example.com"], env=env)
    assert "654321" in json.loads(listed.stdout.splitlines()[0])["body"]
    result = runner.invoke(main, ["worker", "--once"], env=env)
    assert json.loads(result.stdout.splitlines()[-1])["sent"] == 1
    assert "654321" in inbox.messages[0].get_payload()
    services.engine.dispose()


def test_development_outbox_page_shows_messages(client: FlaskClient, db_session: Session) -> None:
    send_code(db_session, to="dev@example.com", code="424242", purpose="signup")
    db_session.commit()
    page = client.get("/dev/outbox", query_string={"to": "dev@example.com"}).get_data(as_text=True)
    assert "424242" in page


def test_the_outbox_page_does_not_exist_in_production(settings: Settings, base_services: Services) -> None:
    production = dataclasses.replace(settings, env="production")
    app = create_app(production, services=dataclasses.replace(base_services, settings=production))
    assert app.test_client().get("/dev/outbox").status_code == 404


def test_the_worker_signs_a_checkpoint_for_new_ledger_entries(app: Flask, client: FlaskClient, db_session: Session,
                                                              rp: RegisteredClient, signed_in: Account) -> None:
    flows.tokens_for(client, rp)  # consent.granted and disclosure entries
    tick_ledger(app.extensions["idp"])
    newest = db_session.scalar(select(func.max(LedgerCheckpoint.tree_size)))
    entries = db_session.scalar(select(func.count()).select_from(LedgerEntry))
    assert newest == entries and entries >= 2


def test_the_worker_rotates_signing_keys_on_schedule_and_the_jwks_publishes_the_new_next(
        app: Flask, client: FlaskClient, db_session: Session) -> None:
    services = app.extensions["idp"]
    long_ago = utcnow() - dt.timedelta(days=services.settings.key_rotation_days + 1)
    rows = db_session.scalars(select(SigningKey).where(SigningKey.purpose == "token")).all()
    old = {row.alg: row.kid for row in rows if row.state == "current"}
    promoted = {row.alg: row.kid for row in rows if row.state == "next"}
    for row in rows:
        row.activated_at, row.created_at = long_ago, long_ago
    db_session.commit()
    rotate_keys_if_due(services)
    services.keyring.invalidate_cache()
    db_session.expire_all()
    states = {row.kid: row.state for row in db_session.scalars(select(SigningKey))}
    before = {"current": old, "next": promoted}
    assert all(states[kid] == "current" for kid in promoted.values()), (before, states)
    assert all(states[kid] == "retired" for kid in old.values()), (before, states)
    published = {key["kid"] for key in client.get("/jwks.json").get_json()["keys"]}
    assert set(old.values()) | set(promoted.values()) <= published  # retired keys stay published
    rotate_keys_if_due(services)  # not due again: the new current keys have only just started
    db_session.expire_all()
    assert {row.kid: row.state for row in db_session.scalars(select(SigningKey))} == states


@pytest.mark.parametrize("address", ["deleted-123@invalid", "0b1d@dependent.invalid", "X@Dependent.INVALID"])
def test_addresses_that_can_never_receive_mail_get_none(db_session: Session, address: str) -> None:
    assert queue_email(db_session, to=address, subject="s", body="b") is None
    assert db_session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.recipient == address)) == 0


def test_a_failing_worker_job_is_logged_and_never_stops_the_others(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def broken(_services: Services) -> None:
        raise RuntimeError("the key-encryption key cannot unseal a key")

    def after(_services: Services) -> None:
        ran.append("after")

    assert run_jobs(app.extensions["idp"], [broken, after]) == ["broken"]
    assert ran == ["after"] and "worker job broken failed" in caplog.text


def test_worker_once_exits_non_zero_and_names_a_job_that_failed(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """For cron and the like: a pass in which a job failed is not a success (the others still ran)."""
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite'}"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    assert runner.invoke(main, ["worker", "--once"], env=env).exit_code == 0

    def housekeeping(_services: Services) -> None:
        raise RuntimeError("the housekeeping job broke")

    monkeypatch.setattr(worker, "housekeeping", housekeeping)
    ran: list[str] = []
    monkeypatch.setattr(worker, "tick_ledger", lambda _services: ran.append("tick_ledger"))
    result = runner.invoke(main, ["worker", "--once"], env=env)
    assert result.exit_code == 1
    assert json.loads(result.stdout.splitlines()[-1])["failed_jobs"] == ["housekeeping"]
    assert ran == ["tick_ledger"]  # a failed job does not stop the later ones
