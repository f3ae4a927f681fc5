"""Consents in the browser: the consent page's purpose and duration, the statutory basis, the
"Connected services" dashboard with Withdraw taking effect at the agency, and "Your record"."""

from __future__ import annotations

import json

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.consents import find_consent
from consent.ledger import Ledger
from consent.pseudonyms import pseudonym_for, record_pseudonyms
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.models import Account, Agency, OutboxMessage
from idp.services import Services
from tests.conftest import make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _ledger(settings: Settings, base_services: Services) -> Ledger:
    return ledger_for(settings, base_services.keyring)


def _entries(db_session: Session, ledger: Ledger, account: Account) -> list[dict]:
    return [item.entry for item in ledger.record_of(db_session, account.id)]


def _withdraw(client: FlaskClient, agency_id: str, decision: str | None = "withdraw") -> int:
    data = {"csrf_token": flows.csrf_token(client)}
    if decision is not None:
        data["decision"] = decision
    return client.post(f"/account/connected-services/{agency_id}/withdraw", data=data).status_code


def test_the_consent_page_shows_the_purpose_each_claim_and_how_long_consent_lasts(
        client: FlaskClient, db_session: Session, agency: Agency, signed_in: Account) -> None:
    rp = make_client(db_session, agency, method="client_secret_basic")
    rp.model.purpose, rp.model.consent_days = "To check your claim for a blue badge", 90
    db_session.commit()
    location = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce())).headers["Location"]
    page = client.get(location).get_data(as_text=True)
    assert "To check your claim for a blue badge" in page
    assert "your consent lasts 90 days" in page
    assert "email address" in page and "date of birth" in page


def test_a_decision_records_purpose_and_expiry(client: FlaskClient, db_session: Session, agency: Agency,
                                               signed_in: Account, settings: Settings,
                                               base_services: Services) -> None:
    rp = make_client(db_session, agency, method="client_secret_basic")
    rp.model.purpose, rp.model.consent_days = "Benefits", 30
    db_session.commit()
    flows.tokens_for(client, rp)
    [granted, disclosed] = _entries(db_session, _ledger(settings, base_services), signed_in)
    assert granted["type"] == "consent.granted" and granted["purpose"] == "Benefits"
    assert granted["client"] == rp.client_id and granted["scopes"] == ["email", "profile"]
    assert disclosed["type"] == "disclosure" and disclosed["basis"] == "consent"
    assert "email" in disclosed["claims"] and disclosed["client"] == rp.client_id


def test_a_statutory_basis_skips_the_page_but_the_disclosure_is_logged(
        client: FlaskClient, db_session: Session, agency: Agency, signed_in: Account, settings: Settings,
        base_services: Services) -> None:
    rp = make_client(db_session, agency, method="client_secret_basic")
    rp.model.statutory_basis = "Social Security Administration Act 1992 s.7A"
    db_session.commit()
    params = flows.authorize_params(rp, flows.pkce(), prompt="consent")
    response = flows.follow_to_client(client, client.get("/authorize", query_string=params), consent=None)
    assert response.headers["Location"].startswith(rp.redirect_uri) and "code=" in response.headers["Location"]
    flows.tokens_for(client, rp)
    disclosures = [e for e in _entries(db_session, _ledger(settings, base_services), signed_in)
                   if e["type"] == "disclosure"]
    assert disclosures and disclosures[0]["basis"] == "statutory"
    assert disclosures[0]["legal_basis"] == "Social Security Administration Act 1992 s.7A"
    assert find_consent(db_session, signed_in.id, agency.id) is None
    page = client.get("/account/connected-services").get_data(as_text=True)
    assert "Shared by law" in page and "Social Security Administration Act 1992 s.7A" in page
    assert "Withdraw consent" not in page


def test_the_dashboard_lists_each_agency_what_since_and_last_used(client: FlaskClient, rp: RegisteredClient,
                                                                  signed_in: Account) -> None:
    flows.tokens_for(client, rp)
    page = client.get("/account/connected-services").get_data(as_text=True)
    assert "Test Agency" in page and "your email address" in page
    assert "Since" in page and "Last used" in page and "Not yet" not in page
    assert 'name="decision" value="withdraw"' in page and 'name="csrf_token"' in page


def test_withdrawing_takes_effect_at_the_agency(client: FlaskClient, db_session: Session, agency: Agency,
                                               rp_key: object, signed_in: Account, settings: Settings,
                                               base_services: Services) -> None:
    rp = make_client(db_session, agency, key=rp_key, backchannel_logout_uri="https://rp.example/bcl")  # type: ignore[arg-type]
    tokens = flows.tokens_for(client, rp, scope="openid email offline_access")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/userinfo", headers=bearer).status_code == 200
    assert _withdraw(client, agency.id) == 302
    assert client.get("/userinfo", headers=bearer).status_code == 401
    refreshed = flows.refresh(client, rp, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    logout = db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "backchannel_logout")).all()
    assert [message.recipient for message in logout] == ["https://rp.example/bcl"]
    assert _entries(db_session, _ledger(settings, base_services), signed_in)[-1]["type"] == "consent.withdrawn"
    again = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce()))
    assert again.headers["Location"].startswith("/consent/")  # asked again next time
    assert "You withdrew your consent for Test Agency" in client.get(
        f"/account/connected-services?withdrawn={agency.id}").get_data(as_text=True)


def test_withdrawing_needs_an_explicit_decision_and_a_csrf_token(client: FlaskClient, rp: RegisteredClient,
                                                                 signed_in: Account, agency: Agency) -> None:
    flows.tokens_for(client, rp)
    assert _withdraw(client, agency.id, decision=None) == 400
    assert _withdraw(client, agency.id, decision="yes") == 400
    no_token = client.post(f"/account/connected-services/{agency.id}/withdraw", data={"decision": "withdraw"})
    assert no_token.status_code == 400
    assert _withdraw(client, agency.id) == 302


def test_withdrawing_what_is_not_shared_is_a_clear_error(client: FlaskClient, signed_in: Account,
                                                         agency: Agency) -> None:
    assert _withdraw(client, agency.id) == 409
    assert _withdraw(client, "no-such-agency") == 409


def test_the_dashboard_needs_a_signed_in_citizen(client: FlaskClient) -> None:
    assert client.get("/account/connected-services").status_code == 302
    assert client.get("/account/record").status_code == 302
    assert client.get("/account/record.json").status_code == 401


def test_your_record_lists_entries_with_downloadable_receipts(client: FlaskClient, rp: RegisteredClient,
                                                              signed_in: Account) -> None:
    flows.tokens_for(client, rp)
    page = client.get("/account/record").get_data(as_text=True)
    assert "You allowed sharing" in page and "Your details were shared" in page and "Test Agency" in page
    record = client.get("/account/record.json").get_json()
    assert [item["entry"]["type"] for item in record["entries"]] == ["consent.granted", "disclosure"]
    seq = record["entries"][0]["leaf_index"]
    download = client.get(f"/account/record/{seq}/receipt")
    assert download.status_code == 200 and download.mimetype == "application/jose"
    assert "attachment" in download.headers["Content-Disposition"]
    assert download.get_data(as_text=True).strip() == record["entries"][0]["receipt"]
    assert json.loads(record["entries"][0]["leaf"]) == record["entries"][0]["entry"]


def test_a_citizen_cannot_download_someone_elses_receipt(client: FlaskClient, rp: RegisteredClient,
                                                         signed_in: Account, db_session: Session,
                                                         settings: Settings, base_services: Services) -> None:
    ledger = _ledger(settings, base_services)
    other = ledger.append(db_session, __import__("consent.events").events.EventType.ACCOUNT_ERASED,
                          {"subject": "someone-else"})
    db_session.commit()
    assert client.get(f"/account/record/{other.seq}/receipt").status_code == 404


def test_deleting_the_account_logs_the_erasure_and_unlinks_the_pseudonym(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, db_session: Session, settings: Settings,
        base_services: Services) -> None:
    from consent.audit import audit

    ledger = _ledger(settings, base_services)
    flows.tokens_for(client, rp)
    pseudonyms = [pseudonym_for(db_session, signed_in.id, agency_id) for agency_id in (rp.model.agency_id, None)]
    token = flows.csrf_token(client, "/account/delete")
    client.post("/account/delete", data={"csrf_token": token, "confirm": "delete"})
    db_session.expire_all()
    assert record_pseudonyms(db_session, signed_in.id) == []
    entries = [item.entry for item in ledger.entries_of(db_session, *pseudonyms)]
    assert [entry["type"] for entry in entries] == ["consent.granted", "disclosure", "account.erased"]
    assert all(signed_in.email not in json.dumps(entry) for entry in entries)
    ledger.checkpoint(db_session)
    assert audit(db_session, ledger).ok
