"""The consent ledger's HTTP API (consent-ledger.md "HTTP API").

Public, JSON: the latest checkpoint, the published keys, inclusion and consistency proofs (they
reveal only hashes). For auditors: entries by range, to an agency client an operator granted ``ledger:audit``,
authenticated exactly as at the token endpoint. Bad input is a 400 naming the problem.
"""

from __future__ import annotations

import base64
from typing import Any

from authlib.oauth2.rfc6750.errors import InsufficientScopeError
from flask import Blueprint, Response, current_app, jsonify, request

from consent.errors import LedgerError, ProofRequestInvalid
from consent.ledger import MAX_RANGE, encode_hashes
from idp.consent_ledger import ledger
from idp.models import Client
from idp.models.clients import AUDIT_SCOPE
from idp.services import db

bp = Blueprint("ledger", __name__, url_prefix="/ledger")

AUDITOR_AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "client_secret_post"]
MAX_DIGITS = 15  # beyond any tree we will hold, and far below where int() gets slow


@bp.errorhandler(LedgerError)
def refuse(error: LedgerError) -> Response:
    status = 400 if isinstance(error, ProofRequestInvalid) else 503
    code = "invalid_request" if status == 400 else "temporarily_unavailable"
    return _json({"error": code, "error_description": str(error)}, status)


@bp.get("/checkpoint")
def checkpoint() -> Response:
    """The latest signed checkpoint: C2SP tlog-checkpoint on a signed-note, plus its fields."""
    latest = ledger().latest_checkpoint(db())
    if latest is None:
        return _json({"error": "not_found", "error_description": "The ledger has no checkpoint yet."}, 404)
    return _json({"origin": ledger().origin, "tree_size": latest.tree_size, "root_hash": _b64(latest.root_hash),
                  "checkpoint": latest.note})


@bp.get("/key")
def key() -> Response:
    """The ledger's Ed25519 keys: ``kid`` (RFC 7638, in receipts) and the note verifier key."""
    published = ledger().published_keys(db())
    keys = [{"kid": item.kid, "verifier_key": item.verifier_key} for item in published]
    return _json({"origin": ledger().origin, "keys": keys})


@bp.get("/proof/inclusion")
def inclusion() -> Response:
    """RFC 9162 §2.1.3.1 audit path for ``leaf_index`` in the tree of ``tree_size`` leaves."""
    index, size = _int_arg("leaf_index"), _int_arg("tree_size")
    path, leaf_hash = ledger().inclusion(db(), index, size)
    return _json({"leaf_index": index, "tree_size": size, "leaf_hash": _b64(leaf_hash),
                  "inclusion_path": encode_hashes(path)})


@bp.get("/proof/consistency")
def consistency() -> Response:
    """RFC 9162 §2.1.4.1 PROOF(first, D[second])."""
    first, second = _int_arg("first"), _int_arg("second")
    path = ledger().consistency_proof(db(), first, second)
    return _json({"first": first, "second": second, "consistency_path": encode_hashes(path)})


@bp.post("/entries")
def entries() -> Response:
    """Entries ``[start, end)`` with their canonical leaf text, for authenticated auditors."""
    auditor = _authenticated_auditor()
    start, end = _int_arg("start"), _int_arg("end")
    found = ledger().entries(db(), start, end)
    db().commit()  # a private_key_jwt assertion's jti is spent
    items = [{"leaf_index": item.seq, "leaf": item.leaf, "leaf_hash": _b64(item.leaf_hash)} for item in found]
    return _json({"auditor": auditor.client_id, "start": start, "end": end, "max_range": MAX_RANGE,
                  "entries": items})


def _authenticated_auditor() -> Client:
    server = current_app.extensions["authlib"]
    client: Client = server.authenticate_client(server.create_oauth2_request(request), AUDITOR_AUTH_METHODS,
                                                endpoint="ledger")
    if not client.holds_privilege(AUDIT_SCOPE):  # granted by an operator only (idp client grant-scope)
        db().commit()
        raise InsufficientScopeError(description=f"The client has not been granted {AUDIT_SCOPE!r}.")
    return client


def _int_arg(name: str) -> int:
    raw = request.values.get(name)
    if raw is None:
        raise ProofRequestInvalid(f"{name!r} is required")
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_DIGITS:
        raise ProofRequestInvalid(f"{name!r} must be a non-negative integer")
    return int(raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _json(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store" if status >= 400 else "public, max-age=10"
    response.headers["Access-Control-Allow-Origin"] = "*"  # public, read-only data
    return response
