"""Threats "self-granted ledger audit" and "linking citizens across agencies through the ledger"
(issue 12 item 2; docs/consent-ledger.md "Who may read entries", "Pseudonyms").

* An agency holding only its initial access token registers a client with ``ledger:audit``:
  refused (RFC 7591 §3.2.2 ``invalid_client_metadata``); only the operator grants it, and no
  authorization request obtains it or shows it on a consent page.
* An auditor reading the whole ledger joins one citizen's entries at two agencies by their one
  pseudonym: entries are named by pairwise pseudonyms, the ``acted_on_behalf`` delegation too,
  while the citizen's own record still lists (and verifies) them all until erasure cuts the link.
"""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from joserfc.jwk import ECKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consent.consents import record_decision
from consent.ledger import Ledger
from consent.models import LedgerEntry
from consent.verify import VerifierKey, verify_receipt
from idp.models import Account, Agency, Client
from idp.models.clients import AUDIT_SCOPE
from idp.registry import grant_privileged_scope
from tests.conftest import CITIZEN_PASSWORD, make_client
from tests.idp import flows
from tests.idp.delegation_flows import acting_tokens, claims, delegate, person
from tests.idp.flows import RegisteredClient

AUDITED_SCOPE = "openid email"


def _register(client: FlaskClient, token: str, key: ECKey, scope: str) -> Any:
    body = {"client_name": "Curious Service", "redirect_uris": ["https://curious.example/cb"],
            "jwks": {"keys": [key.as_dict(private=False)]}, "scope": scope}
    return client.post("/register", json=body, headers={"Authorization": f"Bearer {token}"})


def _auditor(session: Session, agency: Agency) -> RegisteredClient:
    auditor = make_client(session, agency, method="client_secret_basic", client_name="Auditor")
    grant_privileged_scope(auditor.model, AUDIT_SCOPE)  # what `idp client grant-scope` does
    session.commit()
    return auditor


def _whole_ledger(client: FlaskClient, auditor: RegisteredClient, ledger: Ledger, session: Session) -> list[dict]:
    data = {"start": "0", "end": str(ledger.size(session))}
    response = client.post("/ledger/entries", **flows.authenticated(auditor, data))
    assert response.status_code == 200, response.get_json()
    return [json.loads(item["leaf"]) for item in response.get_json()["entries"]]


def _names(entries: list[dict], agency: Agency) -> set[str]:
    """Every person or delegation name in the agency's entries."""
    return {entry[field] for entry in entries if entry.get("agency") == agency.id
            for field in ("subject", "principal", "delegate", "delegation") if field in entry}


# -- self-granted ledger audit -------------------------------------------------------------------

def test_registration_asking_for_ledger_audit_is_refused(client: FlaskClient, db_session: Session,
                                                         agency_token: str, rp_key: ECKey) -> None:
    before = db_session.scalar(select(func.count()).select_from(Client))
    response = _register(client, agency_token, rp_key, f"openid {AUDIT_SCOPE}")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client_metadata"
    assert AUDIT_SCOPE in response.get_json()["error_description"]
    assert db_session.scalar(select(func.count()).select_from(Client)) == before


def test_an_update_cannot_add_ledger_audit_either(client: FlaskClient, agency_token: str, rp_key: ECKey) -> None:
    registered = _register(client, agency_token, rp_key, "openid email").get_json()
    body = {key: registered[key] for key in ("client_id", "client_name", "redirect_uris", "jwks")}
    response = client.put(f"/register/{registered['client_id']}", json=body | {"scope": f"openid {AUDIT_SCOPE}"},
                          headers={"Authorization": f"Bearer {registered['registration_access_token']}"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_client_metadata"


def test_only_an_operator_grant_opens_the_entries(client: FlaskClient, db_session: Session, agency: Agency,
                                                 ledger: Ledger, citizen: Account) -> None:
    record_decision(db_session, citizen.id, agency.id, granted={"email"}, denied=set(), ledger=ledger,
                    client_id="c")
    db_session.commit()
    data = {"start": "0", "end": "1"}
    asserted = make_client(db_session, agency, method="client_secret_basic", client_name="Self-asserted")
    asserted.model.scope += f" {AUDIT_SCOPE}"  # as a registration before the fix could store it
    db_session.commit()
    assert client.post("/ledger/entries", **flows.authenticated(asserted, data)).status_code == 403
    grant_privileged_scope(asserted.model, AUDIT_SCOPE)
    db_session.commit()
    assert client.post("/ledger/entries", **flows.authenticated(asserted, data)).status_code == 200


def test_a_privileged_scope_is_never_obtained_at_authorize_nor_shown_for_consent(
        client: FlaskClient, db_session: Session, agency: Agency, signed_in: Account, rp_key: ECKey) -> None:
    rp = make_client(db_session, agency, key=rp_key)
    rp.model.scope += f" {AUDIT_SCOPE}"  # even a client stored with it, and granted it
    grant_privileged_scope(rp.model, AUDIT_SCOPE)
    db_session.commit()
    params = flows.authorize_params(rp, flows.pkce(), scope=f"openid email {AUDIT_SCOPE}")
    response = client.get("/authorize", query_string=params)
    while response.status_code == 302 and not response.headers["Location"].startswith("/consent/"):
        response = client.get(response.headers["Location"].removeprefix(flows.ISSUER))
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "ledger" not in page.lower() and 'value="email"' in page
    body = flows.tokens_for(client, rp, scope=f"openid email {AUDIT_SCOPE}")
    assert AUDIT_SCOPE not in body["scope"].split()


# -- linking citizens across agencies --------------------------------------------------------------

def test_an_auditor_cannot_join_a_citizens_entries_at_two_agencies(
        client: FlaskClient, db_session: Session, ledger: Ledger, agency: Agency, other_agency: Agency,
        signed_in: Account, rp_key: ECKey) -> None:
    at_a = make_client(db_session, agency, key=rp_key, client_name="Service A")
    at_b = make_client(db_session, other_agency, key=rp_key, client_name="Service B")
    flows.tokens_for(client, at_a, scope=AUDITED_SCOPE)
    flows.tokens_for(client, at_b, scope=AUDITED_SCOPE)
    entries = _whole_ledger(client, _auditor(db_session, agency), ledger, db_session)
    names_a, names_b = _names(entries, agency), _names(entries, other_agency)
    assert names_a and names_b and not names_a & names_b
    record = client.get("/account/record.json").get_json()["entries"]
    own = [item["entry"] for item in record]
    assert {e["agency"] for e in own} == {agency.id, other_agency.id}
    assert {e["type"] for e in own} == {"consent.granted", "disclosure"} and len(own) == 4
    keys = [VerifierKey.parse(k["verifier_key"]) for k in client.get("/ledger/key").get_json()["keys"]]
    assert all(verify_receipt(item["receipt"], keys).entry == item["entry"] for item in record)


def test_acting_for_someone_at_two_agencies_leaves_no_shared_name(
        client: FlaskClient, db_session: Session, ledger: Ledger, agency: Agency, other_agency: Agency,
        rp_key: ECKey) -> None:
    mary, carol = person(db_session, "Mary"), person(db_session, "Carol")
    delegation = delegate(db_session, ledger, mary, carol)
    services = [make_client(db_session, owner, key=rp_key) for owner in (agency, other_agency)]
    for service in services:
        record_decision(db_session, mary.id, service.model.agency_id, granted={"email"}, denied=set(),
                        ledger=ledger, client_id=service.client_id)
    db_session.commit()
    flows.sign_in(client, carol.email, CITIZEN_PASSWORD)
    seen = [claims(acting_tokens(client, service, delegation.id, scope=AUDITED_SCOPE)["id_token"])
            for service in services]
    # Nor do the tokens: subjects and the delegation's id differ by agency (red-team finding D).
    assert seen[0]["delegation"]["id"] != seen[1]["delegation"]["id"]
    assert delegation.id not in {token["delegation"]["id"] for token in seen}
    entries = _whole_ledger(client, _auditor(db_session, agency), ledger, db_session)
    assert sum(e["type"] == "acted_on_behalf" for e in entries) >= 2
    names_a, names_b = _names(entries, agency), _names(entries, other_agency)
    assert names_a and names_b and not names_a & names_b
    assert delegation.id not in names_a | names_b


def test_erasure_cuts_the_link_and_the_entries_still_verify(
        client: FlaskClient, db_session: Session, ledger: Ledger, agency: Agency, signed_in: Account,
        rp_key: ECKey) -> None:
    from consent.audit import audit

    flows.tokens_for(client, make_client(db_session, agency, key=rp_key), scope=AUDITED_SCOPE)
    size = ledger.size(db_session)
    assert len(ledger.record_of(db_session, signed_in.id)) == 2
    token = flows.csrf_token(client, "/account/delete")
    client.post("/account/delete", data={"csrf_token": token, "confirm": "delete"})
    db_session.expire_all()
    erased = db_session.get(Account, signed_in.id)
    assert erased is not None and erased.ledger_secret is None and erased.ledger_pseudonym is None
    assert ledger.record_of(db_session, signed_in.id) == []
    assert ledger.size(db_session) == size + 1  # account.erased appended; nothing removed
    last = db_session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq.desc())).first()
    assert last is not None and last.type == "account.erased"
    ledger.checkpoint(db_session)
    assert audit(db_session, ledger).ok
