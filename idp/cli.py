"""The ``idp`` command line (operations.md "CLI"). Commands that create something print one JSON object."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from idp.cli_delegation import delegation as delegation_commands
from idp.config import ConfigError, Settings
from store import migrate


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _emit(value: dict[str, Any]) -> None:
    click.echo(json.dumps(value, sort_keys=True))


def _app_services(settings: Settings) -> Any:
    from idp.app import build_services

    return build_services(settings)


@click.group()
def main() -> None:
    """Public Services Sign-in: OpenID Connect provider and consent ledger."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (creates the SQLite file if absent), then create any missing signing
    and ledger keys, so the first request can be served (safe from several nodes at once)."""
    _prepare(_settings())
    click.echo("database is at the latest revision; signing and ledger keys are present", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the development server (production uses gunicorn idp.wsgi:app)."""
    from idp.app import create_app

    settings = _settings()
    _prepare(settings)
    create_app(settings).run(host=host, port=port, threaded=True)


def _prepare(settings: Settings) -> None:
    """Migrations applied and signing keys present, so the first request can be served."""
    migrate.upgrade(settings.database_url)
    services = _app_services(settings)
    with services.sessions.begin() as session:
        services.keyring.ensure(session)


@main.group()
def agency() -> None:
    """Agencies (the sector of pairwise subjects)."""


@agency.command("create")
@click.option("--name", required=True)
@click.option("--sector-identifier", default=None, help="https URI whose host names the sector")
def agency_create(name: str, sector_identifier: str | None) -> None:
    from idp.registry import ClientMetadataError, create_agency

    services = _app_services(_settings())
    with services.sessions.begin() as session:
        try:
            created, token = create_agency(session, name, sector_identifier)
        except ClientMetadataError as error:
            raise click.ClickException(error.description) from None
        _emit({"id": created.id, "initial_access_token": token})


@main.group()
def client() -> None:
    """OAuth clients of agencies."""


@client.command("create")
@click.option("--agency", "agency_id", required=True)
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True)
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True)
@click.option("--backchannel-logout-uri", default=None)
@click.option("--auth-method", default="private_key_jwt", show_default=True)
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--jwks-uri", default=None)
@click.option("--scope", default="openid profile email offline_access", show_default=True)
@click.option("--grant-type", "grant_types", multiple=True)
@click.option("--id-token-alg", default="ES256", show_default=True)
@click.option("--subject-type", default="pairwise", show_default=True)
@click.option("--purpose", default=None, help="why the agency asks, shown on the consent page")
@click.option("--consent-days", default=365, show_default=True, type=click.IntRange(min=1),
              help="how long a citizen's consent lasts")
@click.option("--statutory-basis", default=None,
              help="the legal basis the agency holds the claims under: no consent page, disclosures still logged")
@click.option("--default-acr-value", "default_acr_values", multiple=True, help="Cl or Cl.Cm (protocol.md Assurance)")
def client_create(purpose: str | None, consent_days: int, statutory_basis: str | None,
                  agency_id: str, name: str, redirect_uris: tuple[str, ...], post_logout_redirect_uris: tuple[str, ...],
                  backchannel_logout_uri: str | None, auth_method: str, jwks_file: Path | None, jwks_uri: str | None,
                  scope: str, grant_types: tuple[str, ...], id_token_alg: str, subject_type: str,
                  default_acr_values: tuple[str, ...]) -> None:
    from idp.models import Agency
    from idp.outbound import DestinationPolicy
    from idp.registry import ClientMetadata, ClientMetadataError, create_client

    settings = _settings()
    metadata = ClientMetadata(
        client_name=name, redirect_uris=list(redirect_uris), token_endpoint_auth_method=auth_method,
        grant_types=list(grant_types or ("authorization_code", "refresh_token")), scope=scope,
        jwks=_read_json(jwks_file) if jwks_file else None, jwks_uri=jwks_uri,
        post_logout_redirect_uris=list(post_logout_redirect_uris), backchannel_logout_uri=backchannel_logout_uri,
        id_token_signed_response_alg=id_token_alg, subject_type=subject_type,
        default_acr_values=list(default_acr_values),
    )
    services = _app_services(settings)
    with services.sessions.begin() as session:
        owner = session.get(Agency, agency_id)
        if owner is None:
            raise click.ClickException(f"no agency with id {agency_id}")
        try:
            created, secret = create_client(session, owner, metadata,
                                            destinations=DestinationPolicy.from_settings(settings),
                                            allow_public_subjects=settings.allow_public_subjects)
        except ClientMetadataError as error:
            raise click.ClickException(f"{error.error}: {error.description}") from None
        # Operator-only settings (never from dynamic registration): consent-ledger.md "Consents".
        created.purpose, created.consent_days = purpose, consent_days
        created.statutory_basis = statutory_basis.strip() if statutory_basis and statutory_basis.strip() else None
        result = {"client_id": created.client_id}
        if secret:
            result["client_secret"] = secret
        _emit(result)


@client.command("grant-scope")
@click.argument("client_id")
@click.argument("scope")
def client_grant_scope(client_id: str, scope: str) -> None:
    """Grant a privileged scope (ledger:audit): the only way a client gets one, never registration."""
    from idp.registry import grant_privileged_scope

    _change_privileges(client_id, lambda found: grant_privileged_scope(found, scope))


@client.command("revoke-scope")
@click.argument("client_id")
@click.argument("scope")
def client_revoke_scope(client_id: str, scope: str) -> None:
    """Take a privileged scope back from a client."""
    from idp.registry import revoke_privileged_scope

    _change_privileges(client_id, lambda found: revoke_privileged_scope(found, scope))


def _change_privileges(client_id: str, change: Callable[[Any], None]) -> None:
    from idp.models import Client
    from idp.registry import ClientMetadataError

    services = _app_services(_settings())
    with services.sessions.begin() as session:
        found = session.get(Client, client_id)
        if found is None:
            raise click.ClickException(f"no client with id {client_id}")
        try:
            change(found)
        except ClientMetadataError as error:
            raise click.ClickException(f"{error.error}: {error.description}") from None
        _emit({"client_id": found.client_id, "privileged_scopes": found.privileged_scopes.split()})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise click.ClickException(f"{path} is not valid JSON") from None


@main.group()
def user() -> None:
    """Citizen accounts."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--given-name", required=True)
@click.option("--family-name", required=True)
@click.option("--birthdate", default=None, help="YYYY-MM-DD")
@click.option("--password-stdin", is_flag=True, required=True, help="read the password from standard input")
def user_create(email: str, given_name: str, family_name: str, birthdate: str | None, password_stdin: bool) -> None:
    from idp.accounts import AccountError, create_account

    password = sys.stdin.readline().rstrip("\n")
    try:
        born = dt.date.fromisoformat(birthdate) if birthdate else None
    except ValueError:
        raise click.ClickException("--birthdate must be YYYY-MM-DD") from None
    services = _app_services(_settings())
    with services.sessions.begin() as session:
        try:
            account = create_account(session, email=email, given_name=given_name, family_name=family_name,
                                     password=password, birthdate=born)
        except AccountError as error:
            raise click.ClickException(str(error)) from None
        _emit({"id": account.id})


@main.group()
def keys() -> None:
    """Signing keys."""


@keys.command("list")
def keys_list() -> None:
    services = _app_services(_settings())
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        for info in services.keyring.list(session):
            click.echo(json.dumps({"kid": info.kid, "alg": info.alg, "purpose": info.purpose, "state": info.state,
                                   "created_at": info.created_at.isoformat()}))


@keys.command("rotate")
def keys_rotate() -> None:
    """Promote the published next key to current; the old current stays published as retired."""
    settings = _settings()
    services = _app_services(settings)
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        services.keyring.rotate(session, retire_after=settings.key_retire_after)
        current = [info for info in services.keyring.list(session) if info.state == "current"]
        _emit({"current": {info.alg: info.kid for info in current if info.purpose == "token"}})


@main.command()
@click.option("--once", is_flag=True, help="one pass, then exit: status 1 if any job failed (for cron and the like)")
@click.option("--interval", default=5.0, show_default=True, type=float, help="seconds between passes")
def worker(once: bool, interval: float) -> None:
    """Deliver the outbox (emails, back-channel logout) with retries, and run the periodic jobs
    (housekeeping, key rotation, delegation and ledger ticks)."""
    from idp.worker import run_forever, run_once

    services = _app_services(_settings())
    if once:
        report = run_once(services)
        delivery = report.delivery
        _emit({"sent": delivery.sent, "retried": delivery.retried, "failed": delivery.failed,
               "failed_jobs": report.failed_jobs})
        if report.failed_jobs:
            raise SystemExit(1)  # each failure is logged with its traceback above
    else:
        run_forever(services, interval)


@main.group()
def outbox() -> None:
    """Messages waiting to be, or already, sent."""


@outbox.command("list")
@click.option("--to", "recipient", default=None, help="only messages to this address")
def outbox_list(recipient: str | None) -> None:
    """Development: read the messages that would be sent, newest first (a sent message's body is erased)."""
    from idp.outbox import pending

    services = _app_services(_settings())
    with services.sessions() as session:
        for message in pending(session, to=recipient):
            click.echo(json.dumps({"id": message.id, "kind": message.kind, "to": message.recipient,
                                   "subject": message.subject, "body": message.body,
                                   "created_at": message.created_at.isoformat(),
                                   "sent_at": message.sent_at.isoformat() if message.sent_at else None,
                                   "failed_at": message.failed_at.isoformat() if message.failed_at else None}))


@main.group()
def ledger() -> None:
    """The consent ledger (consent-ledger.md)."""


@ledger.command("checkpoint")
def ledger_checkpoint() -> None:
    """Record lapsed consents as expired, then sign a checkpoint of the whole tree (run every T seconds)."""
    from consent.consents import expire_consents
    from idp.consent_ledger import ledger_for

    settings = _settings()
    services = _app_services(settings)
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        the_ledger = ledger_for(settings, services.keyring)
        expired = expire_consents(session, ledger=the_ledger)
        made = the_ledger.checkpoint(session)
        _emit({"expired": expired, "tree_size": made.tree_size if made else 0,
               "checkpoint": made.note if made else None})


@ledger.command("verify")
def ledger_verify() -> None:
    """Recompute the whole tree from the stored entries and check every stored checkpoint."""
    from consent.audit import audit
    from idp.consent_ledger import ledger_for

    settings = _settings()
    services = _app_services(settings)
    with services.sessions() as session:
        report = audit(session, ledger_for(settings, services.keyring))
    if report.first is not None:
        click.echo(f"ledger verification FAILED: first bad entry {report.first.seq}: {report.first.message}", err=True)
        for problem in sorted(report.problems, key=lambda found: found.seq)[1:]:
            click.echo(f"  also at entry {problem.seq}: {problem.message}", err=True)
        raise SystemExit(1)
    _emit({"verified": True, "tree_size": report.size, "checkpoints": report.checkpoints})


main.add_command(delegation_commands)  # delegation.md: idp delegation create-attorney|suspend|list|tick


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="seed the demo and exit")
def demo(host: str, port: int, no_serve: bool) -> None:
    """Migrate, seed the demo (idempotent) and serve the provider and the demo agency services."""
    from idp.demo import run_demo

    run_demo(_settings(), host=host, port=port, serve=not no_serve)
