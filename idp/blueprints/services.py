"""The citizen's "Connected services" (withdraw a consent) and "Your record" (their own ledger
entries and receipts, also as JSON) — consent-ledger.md "Consents" and "Receipts"."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse

from consent.consents import consents_of, withdraw_consent
from consent.errors import ConsentNotActive
from consent.ledger import StoredEntry
from idp.consent_ledger import agency_tokens, ledger
from idp.errors import PageError
from idp.forms import completed
from idp.login_sessions import current_session
from idp.models import Account, Agency, Client, TokenFamily
from idp.oauth.claims import SCOPE_DESCRIPTIONS
from idp.services import db
from store.db import utcnow

bp = Blueprint("services", __name__, url_prefix="/account")

EVENT_WORDS = {
    "consent.granted": "You allowed sharing", "consent.withdrawn": "You withdrew consent",
    "consent.expired": "Your consent ended", "disclosure": "Your details were shared",
    "account.erased": "Your account was deleted",
}


@dataclasses.dataclass(frozen=True)
class Connection:
    agency: Agency
    shared: list[str]
    since: dt.datetime
    last_used: dt.datetime | None
    state: str  # active, withdrawn, expired, or statutory (no consent: shared under a legal duty)
    expires_at: dt.datetime | None = None
    legal_basis: str | None = None


@bp.get("/connected-services")
def connected() -> ResponseReturnValue:
    account = _citizen()
    if isinstance(account, BaseResponse):
        return account
    withdrawn = db().get(Agency, request.args.get("withdrawn", "")) if request.args.get("withdrawn") else None
    return render_template("services/connected.html", connections=connections_of(account.id), withdrawn=withdrawn)


@bp.post("/connected-services/<agency_id>/withdraw")
def withdraw(agency_id: str) -> ResponseReturnValue:
    """Withdraw: the consent ends, the agency's tokens are revoked, its sessions logged out, and
    ``consent.withdrawn`` is appended — all in one transaction."""
    account = _citizen()
    if isinstance(account, BaseResponse):
        return account
    if request.form.get("decision") != "withdraw":
        raise PageError("Choose what to do", "Select Withdraw consent to stop sharing.")
    try:
        withdraw_consent(db(), account.id, agency_id[:36], ledger=ledger(), revoke_tokens=agency_tokens)
    except ConsentNotActive:
        message = "You are not sharing anything with that service."
        raise PageError("There is nothing to withdraw", message, 409) from None
    return completed(url_for("services.connected", withdrawn=agency_id))


@bp.get("/record")
def record() -> ResponseReturnValue:
    account = _citizen()
    if isinstance(account, BaseResponse):
        return account
    rows = [(item, item.entry) for item in _own_entries(account.id)]
    agencies = {agency.id: agency.name for agency in db().scalars(select(Agency))}
    return render_template("services/record.html", rows=rows[::-1], agencies=agencies, words=EVENT_WORDS)


@bp.get("/record.json")
def record_json() -> Response:
    login = current_session()
    if login is None:
        response = jsonify(error="login_required", error_description="Sign in to see your record.")
        response.status_code = 401
        return response
    items = [_as_json(item) for item in _own_entries(login.account_id)]
    response = jsonify(origin=ledger().origin, entries=items)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/record/<int:seq>/receipt")
def receipt(seq: int) -> ResponseReturnValue:
    """The receipt (compact JWS) of one of the citizen's own entries, as a download."""
    account = _citizen()
    if isinstance(account, BaseResponse):
        return account
    found = next((item for item in _own_entries(account.id) if item.seq == seq and item.receipt), None)
    if found is None or found.receipt is None:
        raise PageError("Receipt not found", "There is no receipt with that number in your record.", 404)
    response = Response(found.receipt + "\n", mimetype="application/jose")
    response.headers["Content-Disposition"] = f'attachment; filename="consent-receipt-{seq}.jws"'
    response.headers["Cache-Control"] = "no-store"
    return response


def connections_of(account_id: str) -> list[Connection]:
    """Every agency the citizen has shared with: consents, then statutory disclosures."""
    now, found = utcnow(), []
    agencies_with_consent = set()
    for consent in consents_of(db(), account_id):
        agencies_with_consent.add(consent.agency_id)
        state = "withdrawn" if consent.withdrawn_at else ("active" if consent.is_active(now) else "expired")
        shared = [SCOPE_DESCRIPTIONS.get(scope, scope) for scope in sorted(consent.granted)]
        agency = db().get(Agency, consent.agency_id)
        assert agency is not None  # consents cascade with their agency
        found.append(Connection(agency, shared, consent.granted_at, consent.last_used_at, state, consent.expires_at))
    return found + [c for c in _statutory(account_id) if c.agency.id not in agencies_with_consent]


def _statutory(account_id: str) -> list[Connection]:
    query = (
        select(Client, func.min(TokenFamily.created_at), func.max(TokenFamily.created_at))
        .join(TokenFamily, TokenFamily.client_id == Client.client_id)
        .where(TokenFamily.account_id == account_id, Client.statutory_basis.is_not(None))
        .group_by(Client.client_id)
    )
    return [Connection(client.agency, [SCOPE_DESCRIPTIONS.get(s, s) for s in client.scope.split() if s != "openid"],
                       first, last, "statutory", legal_basis=client.statutory_basis)
            for client, first, last in db().execute(query)]


def _own_entries(account_id: str) -> list[StoredEntry]:
    return ledger().record_of(db(), account_id)


def _as_json(item: StoredEntry) -> dict[str, Any]:
    return {"leaf_index": item.seq, "entry": item.entry, "leaf": item.leaf,
            "leaf_hash": base64.b64encode(item.leaf_hash).decode(), "receipt": item.receipt}


def _citizen() -> Account | BaseResponse:
    login = current_session()
    if login is None:
        return redirect(url_for("signin.signin", next=request.path))
    return login.account
