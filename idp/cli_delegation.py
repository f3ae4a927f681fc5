"""``idp delegation``: the operator's side of delegation.md (attorneys, safeguarding, the lifecycle tick)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypedDict, Unpack

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.delegation_models import STATUSES, Delegation


@click.group()
def delegation() -> None:
    """Delegations: create attorneys, suspend, list, run the lifecycle jobs."""


@contextmanager
def _context() -> Iterator[tuple[Session, Any, Any]]:
    """A transaction, the ledger and the service's effects (tokens, logout, outbox)."""
    from idp.cli import _app_services, _settings
    from idp.consent_ledger import ledger_for
    from idp.delegation_effects import ServiceEffects

    settings = _settings()
    services = _app_services(settings)
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        yield session, ledger_for(settings, services.keyring), ServiceEffects()


def _account_id(session: Session, email: str) -> str:
    from consent.contact_details import email_problem
    from idp.models import Account

    if problem := email_problem(email):
        raise click.ClickException(f"{problem}: {email!r}")
    found = session.scalar(select(Account.id).where(Account.email == email.strip().lower(),
                                                    Account.status == "active"))
    if found is None:
        raise click.ClickException(f"no active account with email {email}")
    return found


def _domain_errors() -> Any:
    from consent.errors import DelegationError

    return DelegationError


@delegation.command("create-attorney")
@click.option("--principal-email", required=True, help="the donor (the person served)")
@click.option("--attorney-email", required=True)
@click.option("--reference", required=True, help="the registered power of attorney or court order reference")
@click.option("--checked-by", required=True, help="who checked the reference out of band")
@click.option("--basis", type=click.Choice(["power_of_attorney", "deputyship"]), default="power_of_attorney",
              show_default=True)
@click.option("--mode", type=click.Choice(["act", "view"]), default="act", show_default=True)
@click.option("--scope", "scopes", multiple=True, help="limit to these scopes (default: all the principal allows)")
@click.option("--agency", "agencies", multiple=True, help="limit to these agency ids (default: all)")
@click.option("--ends", default=None, help="YYYY-MM-DD (default: no end date)")
def create_attorney(principal_email: str, attorney_email: str, reference: str, checked_by: str, basis: str, mode: str,
                    scopes: tuple[str, ...], agencies: tuple[str, ...], ends: str | None) -> None:
    """An attorney delegation, after checking its reference out of band (the principal may lack capacity)."""
    from consent.delegations import Terms, create_active

    if not reference.strip() or not checked_by.strip():
        raise click.ClickException("--reference and --checked-by must not be empty")
    with _context() as (session, ledger, _effects):
        terms = Terms(type="attorney", mode=mode, agencies=tuple(agencies) or None,
                      scopes=frozenset(scopes) | {"openid"} if scopes else None, ends_at=_date(ends))
        try:
            made = create_active(session, _account_id(session, principal_email), _account_id(session, attorney_email),
                                 terms, ledger=ledger, by=f"operator:{checked_by.strip()[:200]}",
                                 reason="created_by_operator", basis=basis,
                                 evidence=(reference.strip()[:200], checked_by.strip()[:200]))
        except _domain_errors() as error:
            raise click.ClickException(str(error)) from None
        click.echo(json.dumps({"id": made.id, "status": made.status}, sort_keys=True))


def _date(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(23, 59, 59), dt.UTC)
    except ValueError:
        raise click.ClickException("--ends must be YYYY-MM-DD") from None


@delegation.command("suspend")
@click.argument("delegation_id")
@click.option("--reason", required=True, help="kept for operators only: the delegate is never told why")
@click.option("--operator", required=True, help="who is suspending it")
@click.option("--notify/--no-notify", default=True, show_default=True,
              help="--no-notify: tell neither person (safeguarding)")
def suspend(delegation_id: str, reason: str, operator: str, notify: bool) -> None:
    """Suspend at once: tokens revoked, acting sessions logged out; the reason stays with operators."""
    _transition(delegation_id, "suspend", "suspended_by_operator", operator, note=reason[:500], notify=notify)


@delegation.command("resume")
@click.argument("delegation_id")
@click.option("--operator", required=True)
def resume(delegation_id: str, operator: str) -> None:
    _transition(delegation_id, "resume", "resumed", operator)


@delegation.command("revoke")
@click.argument("delegation_id")
@click.option("--operator", required=True)
def revoke(delegation_id: str, operator: str) -> None:
    """End any delegation (the only way an attorney delegation ends early)."""
    _transition(delegation_id, "revoke", "revoked_by_operator", operator)


@delegation.command("renew")
@click.argument("delegation_id")
@click.option("--ends", required=True, help="YYYY-MM-DD: the new end or review date")
@click.option("--operator", required=True, help="who checked that the power of attorney still stands")
def renew(delegation_id: str, ends: str, operator: str) -> None:
    """Renew an attorney delegation (delegation.md "Review": for ``attorney``, an operator's fresh
    approval; every other type is renewed by the principal)."""
    from consent.delegations import Terms, check_terms

    new_end = _date(ends)
    try:
        check_terms(Terms(type="attorney", ends_at=new_end), dt.datetime.now(dt.UTC))
    except _domain_errors() as error:
        raise click.ClickException(str(error)) from None
    _transition(delegation_id, "renew", "renewed", operator, only_type="attorney", ends_at=new_end, reminded_at=None)


class _Columns(TypedDict, total=False):
    """The columns an operator's transition sets beyond its status (``renew``)."""
    ends_at: dt.datetime | None
    reminded_at: dt.datetime | None


def _transition(delegation_id: str, name: str, reason: str, operator: str, *, note: str | None = None,
                notify: bool = True, only_type: str | None = None, **values: Unpack[_Columns]) -> None:
    from consent.delegations import transition

    with _context() as (session, ledger, effects):
        found = session.get(Delegation, delegation_id[:36])
        if found is None:
            raise click.ClickException(f"no delegation {delegation_id}")
        if only_type is not None and found.type != only_type:
            raise click.ClickException(f"only an {only_type} delegation is renewed by an operator; "
                                       f"a {found.type} delegation is renewed by the person it serves")
        if not notify:
            found.notify = False
        try:
            transition(session, found, name, by=f"operator:{operator.strip()[:200]}", reason=reason, ledger=ledger,
                       effects=effects if notify else _Silent(effects), note=note, tell_delegate=notify, **values)
        except _domain_errors() as error:
            raise click.ClickException(str(error)) from None
        click.echo(json.dumps({"id": found.id, "status": found.status}, sort_keys=True))


class _Silent:
    """Safeguarding: end access as usual, but email nobody."""

    def __init__(self, effects: Any) -> None:
        self.effects = effects

    def end_access(self, session: Session, delegation: Delegation) -> None:
        self.effects.end_access(session, delegation)

    def notify(self, session: Session, delegation: Delegation, what: str, *, tell_delegate: bool = True) -> None:
        return


@delegation.command("list")
@click.option("--principal-email", default=None)
@click.option("--delegate-email", default=None)
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
def list_delegations(principal_email: str | None, delegate_email: str | None, status: str | None, limit: int) -> None:
    """One JSON object per delegation, newest first (operators see the suspension reason)."""
    with _context() as (session, _ledger, _effects):
        query = select(Delegation).order_by(Delegation.created_at.desc()).limit(limit)
        if principal_email:
            query = query.where(Delegation.principal_id == _account_id(session, principal_email))
        if delegate_email:
            query = query.where(Delegation.delegate_id == _account_id(session, delegate_email))
        if status:
            query = query.where(Delegation.status == status)
        for found in session.scalars(query):
            click.echo(json.dumps(_describe(found), sort_keys=True))


def _describe(found: Delegation) -> dict[str, Any]:
    when = {name: getattr(found, name).isoformat() if getattr(found, name) else None
            for name in ("starts_at", "ends_at", "status_changed_at", "evidence_checked_at", "last_used_at",
                         "continued_at")}
    return {"id": found.id, "principal_id": found.principal_id, "delegate_id": found.delegate_id,
            "invite_email": found.invite_email, "type": found.type, "basis": found.basis, "mode": found.mode,
            "status": found.status, "status_reason": found.status_reason, "status_note": found.status_note,
            "status_changed_by": found.status_changed_by, "agencies": found.agencies, "scopes": found.scopes,
            "evidence_reference": found.evidence_reference, "evidence_checked_by": found.evidence_checked_by,
            "parent_id": found.parent_id, "continued_assurance": found.continued_assurance, **when}


@delegation.command("tick")
def tick_command() -> None:
    """Expire ended, lapsed and unused delegations; send review reminders; suspend grown-up dependents."""
    with _context() as (session, ledger, effects):
        report = run_tick(session, ledger, effects)
        click.echo(json.dumps(report, sort_keys=True))


def run_tick(session: Session, ledger: Any, effects: Any) -> dict[str, int]:
    from dataclasses import asdict

    from consent.delegation_jobs import TickPolicy, tick
    from idp.cli import _settings

    settings = _settings()
    policy = TickPolicy(unused_days=settings.delegation_unused_days, reminder_days=settings.delegation_reminder_days,
                        parent_age=settings.delegation_parent_age)
    return asdict(tick(session, ledger=ledger, effects=effects, policy=policy))
