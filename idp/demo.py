"""``idp demo``: two agencies with one example service each, two citizens, all on loopback.

Seeding is idempotent. What it made (agency and client ids, the services' private keys and
ports) is remembered in ``<instance>/demo.json``; a later run reuses every row that still
exists and creates only what is missing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from joserfc.jwk import ECKey, import_key
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, make_server

from consent.delegation_models import Delegation
from consent.delegations import Terms, accept_invitation, invite_delegate
from consent.ledger import Ledger
from idp.accounts import create_account
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.dependents import create_dependent
from idp.models import Account, Agency, Client
from idp.outbound import DestinationPolicy
from idp.registry import ClientMetadata, apply_metadata, create_agency, create_client, validate
from store import migrate

SERVICE_HOST = "127.0.0.1"
DEFAULT_SERVICE_PORTS = (5001, 5002)
STATE_FILE = "demo.json"
DEMO_SCOPE = "openid profile email offline_access"


@dataclasses.dataclass(frozen=True)
class DemoAgency:
    key: str
    name: str
    service_name: str


@dataclasses.dataclass(frozen=True)
class DemoCitizen:
    email: str
    password: str
    given_name: str
    family_name: str
    birthdate: dt.date


AGENCIES = (
    DemoAgency("transport", "Department for Transport Services", "Driving licence service"),
    DemoAgency("council", "County Council Services", "Council tax service"),
)
CITIZENS = (
    DemoCitizen("ada@example.com", "demo-password-ada", "Ada", "Lovelace", dt.date(1815, 12, 10)),
    DemoCitizen("alan@example.com", "demo-password-alan", "Alan", "Turing", dt.date(1912, 6, 23)),
)

# Alan's child: a profile with no credentials (delegation.md ``parent``), eight years old.
DEMO_CHILD = DemoCitizen("", "", "Ethel", "Turing", dt.date(dt.date.today().year - 8, 1, 1))


@dataclasses.dataclass(frozen=True)
class SeededService:
    """One demo agency service as registered: what its relying party needs to run."""

    key: str
    name: str
    agency_id: str
    client_id: str
    private_jwk: dict[str, Any]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{SERVICE_HOST}:{self.port}"


def run_demo(settings: Settings, *, host: str, port: int, serve: bool,
             service_ports: Sequence[int] = DEFAULT_SERVICE_PORTS) -> None:
    """Migrate, seed, and (if ``serve``) run both services in the background and the provider in front."""
    migrate.upgrade(settings.database_url)
    seeded = seed(settings, service_ports)
    if not serve:
        return
    servers = [start_server(build_service(settings, service), service.port) for service in seeded]
    start_worker(settings)
    print(banner(settings, seeded, host, port), flush=True)
    from idp.app import create_app

    try:
        create_app(settings).run(host=host, port=port, threaded=True)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def start_worker(settings: Settings) -> None:
    """The outbox worker in the background, so back-channel logout (and SMTP, if set) works in the demo."""
    from idp.app import build_services
    from idp.worker import run_forever

    threading.Thread(target=run_forever, args=(build_services(settings), 2.0), daemon=True,
                     name="outbox-worker").start()


# --- seeding ---------------------------------------------------------------------------------

def seed(settings: Settings, service_ports: Sequence[int] = DEFAULT_SERVICE_PORTS) -> list[SeededService]:
    """Signing keys, agencies, clients and citizens: whatever is missing is created."""
    from idp.app import build_services

    if len(service_ports) != len(AGENCIES):
        raise ValueError(f"give one port per demo service ({len(AGENCIES)})")
    saved = load_state(settings)
    services = build_services(settings)
    try:
        with services.sessions.begin() as session:
            services.keyring.ensure(session)
            destinations = DestinationPolicy.from_settings(settings)
            seeded = [seed_service(session, agency, port, saved.get(agency.key, {}), destinations)
                      for agency, port in zip(AGENCIES, service_ports, strict=True)]
            for citizen in CITIZENS:
                seed_citizen(session, citizen)
            seed_support_network(session, ledger_for(settings, services.keyring), settings.delegation_parent_age)
    finally:
        services.engine.dispose()
    save_state(settings, seeded)
    return seeded


def seed_service(session: Session, spec: DemoAgency, port: int, saved: dict[str, Any],
                 destinations: DestinationPolicy) -> SeededService:
    agency = session.get(Agency, saved["agency_id"]) if saved.get("agency_id") else None
    if agency is None:
        agency, _token = create_agency(session, spec.name)
    private_jwk = saved.get("private_jwk") or new_private_jwk()
    metadata = client_metadata(spec, port, private_jwk)
    client = session.get(Client, saved["client_id"]) if saved.get("client_id") else None
    if client is None or client.agency_id != agency.id:
        client, _secret = create_client(session, agency, metadata, destinations=destinations)
    elif registered_differently(client, metadata):  # other ports, or a key the state file lost
        validate(metadata, allow_public_subjects=False, destinations=destinations)
        apply_metadata(client, metadata)
    return SeededService(key=spec.key, name=spec.service_name, agency_id=agency.id, client_id=client.client_id,
                         private_jwk=private_jwk, port=port)


def client_metadata(spec: DemoAgency, port: int, private_jwk: dict[str, Any]) -> ClientMetadata:
    base_url = f"http://{SERVICE_HOST}:{port}"
    return ClientMetadata(
        client_name=spec.service_name,
        redirect_uris=[base_url + "/callback"],
        post_logout_redirect_uris=[base_url + "/"],
        token_endpoint_auth_method="private_key_jwt",
        scope=DEMO_SCOPE,
        jwks={"keys": [public_jwk(private_jwk)]},
    )


def registered_differently(client: Client, metadata: ClientMetadata) -> bool:
    return (client.redirect_uris != metadata.redirect_uris
            or client.post_logout_redirect_uris != metadata.post_logout_redirect_uris
            or client.jwks != metadata.jwks)


def new_private_jwk() -> dict[str, Any]:
    key = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, private=True, auto_kid=True)
    return dict(key.as_dict(private=True))


def public_jwk(private_jwk: dict[str, Any]) -> dict[str, Any]:
    return dict(import_key(private_jwk).as_dict(private=False))


def seed_citizen(session: Session, citizen: DemoCitizen) -> None:
    if session.scalar(select(Account.id).where(Account.email == citizen.email)) is not None:
        return
    create_account(session, email=citizen.email, given_name=citizen.given_name, family_name=citizen.family_name,
                   password=citizen.password, birthdate=citizen.birthdate)


def seed_support_network(session: Session, ledger: Ledger, parent_age: int) -> None:
    """delegation.md: Alan is Ada's carer, and the parent of a dependent child profile (once each)."""
    ada, alan = (session.scalar(select(Account).where(Account.email == c.email)) for c in CITIZENS)
    assert ada is not None and alan is not None
    mine = select(Delegation.type).where(Delegation.delegate_id == alan.id, Delegation.status == "active")
    existing = set(session.scalars(mine))
    if "carer" not in existing:
        _delegation, token = invite_delegate(session, ada.id, alan.email, Terms(type="carer", mode="act"),
                                             ledger=ledger)
        accept_invitation(session, token, alan.id, alan.email, ledger=ledger, effects=None)
    if "parent" not in existing:
        child = DEMO_CHILD
        create_dependent(session, alan, given_name=child.given_name, family_name=child.family_name,
                         birthdate=child.birthdate, parent_age=parent_age, ledger=ledger)


# --- the state file ---------------------------------------------------------------------------

def state_path(settings: Settings) -> Path:
    return settings.instance_path / STATE_FILE


def load_state(settings: Settings) -> dict[str, dict[str, Any]]:
    path = state_path(settings)
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return {}
    services = state.get("services") if isinstance(state, dict) else None
    return {key: value for key, value in (services or {}).items() if isinstance(value, dict)}


def save_state(settings: Settings, seeded: Sequence[SeededService]) -> None:
    """Written owner-only: it holds the demo services' private keys."""
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    services = {service.key: {"agency_id": service.agency_id, "client_id": service.client_id,
                              "private_jwk": service.private_jwk, "port": service.port} for service in seeded}
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps({"services": services}, indent=2, sort_keys=True) + "\n")


def seeded_services(settings: Settings) -> list[SeededService]:
    """The services the last run seeded, as remembered in the state file."""
    saved = load_state(settings)
    return [SeededService(key=agency.key, name=agency.service_name, agency_id=saved[agency.key]["agency_id"],
                          client_id=saved[agency.key]["client_id"], private_jwk=saved[agency.key]["private_jwk"],
                          port=int(saved[agency.key]["port"]))
            for agency in AGENCIES if agency.key in saved]


# --- serving ---------------------------------------------------------------------------------

def build_service(settings: Settings, service: SeededService) -> Flask:
    from examples.agency_service.app import create_service

    return create_service(name=service.name, issuer=settings.issuer, client_id=service.client_id,
                          private_jwk=service.private_jwk, base_url=service.base_url,
                          secret_key=service_secret(settings, service))


def service_secret(settings: Settings, service: SeededService) -> str:
    """Stable across restarts (so demo sessions survive them), distinct per service."""
    message = f"demo-service|{service.client_id}".encode()
    return hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()


def start_server(app: Flask, port: int, host: str = SERVICE_HOST) -> BaseWSGIServer:
    """Serve ``app`` from a daemon thread; stop it with ``shutdown()`` then ``server_close()``."""
    server = make_server(host, port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name=f"demo-service-{server.port}", daemon=True).start()
    return server


def banner(settings: Settings, seeded: Sequence[SeededService], host: str, port: int) -> str:
    rows = [("Identity provider", f"{settings.issuer}  (listening on http://{host}:{port})")]
    rows += [(service.name, f"{service.base_url}/") for service in seeded]
    width = max(len(label) for label, _ in rows) + 3
    lines = ["", "Public Services Sign-in demo", "=" * 28]
    lines += [f"{label + ':':<{width}}{value}" for label, value in rows]
    lines += ["", "Sign in as:"]
    lines += [f"  {c.given_name} {c.family_name}:  {c.email}  /  {c.password}" for c in CITIZENS]
    lines += ["", "Support network: Alan is Ada's carer and the parent of Ethel (a child profile).",
              "Sign in to a service as Alan and choose whom you are using it for. Ada's details are",
              "shared only once she has used the service herself and allowed it."]
    if settings.issuer_is_loopback and urlsplit(settings.issuer).port != port:
        lines += ["", f"Note: IDP_ISSUER is {settings.issuer} but the provider listens on port {port};",
                  "      the services use IDP_ISSUER, so set it to match."]
    lines += ["", "Press Ctrl+C to stop.", ""]
    return "\n".join(lines)
