"""The ledger's HTTP API: public checkpoint, key and proofs that verify with the standalone
verifier; auditors' entries by range; clear 400s for malformed requests, never a 500."""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from consent import verify
from consent.ledger import MAX_RANGE, Ledger
from consent.verify import VerifierKey, verify_checkpoint, verify_consistency, verify_inclusion
from idp.models import Account, Agency
from idp.models.clients import AUDIT_SCOPE
from idp.registry import grant_privileged_scope
from tests.conftest import make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def history(client: FlaskClient, rp: RegisteredClient, signed_in: Account, db_session: Session,
            ledger: Ledger) -> dict:
    """A consent and a disclosure, then a checkpoint of them: the latest checkpoint's JSON."""
    flows.tokens_for(client, rp)
    ledger.checkpoint(db_session)
    db_session.commit()
    return client.get("/ledger/checkpoint").get_json()  # type: ignore[no-any-return]


def _keys(client: FlaskClient) -> list[VerifierKey]:
    return [VerifierKey.parse(item["verifier_key"]) for item in client.get("/ledger/key").get_json()["keys"]]


def _hashes(items: list[str]) -> list[bytes]:
    return [base64.b64decode(item) for item in items]


def test_the_latest_checkpoint_is_public_and_signed(client: FlaskClient, history: dict) -> None:
    checkpoint = verify_checkpoint(history["checkpoint"], _keys(client))
    assert checkpoint.origin == history["origin"] == "localhost/consent-ledger"
    assert checkpoint.size == history["tree_size"] >= 2
    assert base64.b64decode(history["root_hash"]) == checkpoint.root_hash


def test_the_ledger_key_is_published_with_its_key_id(client: FlaskClient, history: dict) -> None:
    [key] = client.get("/ledger/key").get_json()["keys"]
    assert key["verifier_key"].startswith("localhost/consent-ledger+")
    assert VerifierKey.parse(key["verifier_key"]).jwk_thumbprint == key["kid"]


def test_an_inclusion_proof_for_every_entry_verifies(client: FlaskClient, history: dict) -> None:
    size, root = history["tree_size"], base64.b64decode(history["root_hash"])
    for index in range(size):
        proof = client.get("/ledger/proof/inclusion", query_string={"leaf_index": index, "tree_size": size}).get_json()
        verify_inclusion(base64.b64decode(proof["leaf_hash"]), index, size, _hashes(proof["inclusion_path"]), root)


def test_a_consistency_proof_between_two_checkpoints_verifies(client: FlaskClient, history: dict, rp: RegisteredClient,
                                                              db_session: Session, ledger: Ledger) -> None:
    flows.tokens_for(client, rp)  # another disclosure
    ledger.checkpoint(db_session)
    db_session.commit()
    later = client.get("/ledger/checkpoint").get_json()
    first, second = history["tree_size"], later["tree_size"]
    assert second > first
    proof = client.get("/ledger/proof/consistency", query_string={"first": first, "second": second}).get_json()
    verify_consistency(first, second, base64.b64decode(history["root_hash"]), base64.b64decode(later["root_hash"]),
                       _hashes(proof["consistency_path"]))


@pytest.mark.parametrize("query", [
    {"leaf_index": "abc", "tree_size": "1"}, {"leaf_index": "-1", "tree_size": "1"},
    {"leaf_index": "1.5", "tree_size": "2"}, {"leaf_index": "", "tree_size": "1"}, {"tree_size": "1"},
    {"leaf_index": "0", "tree_size": "0"}, {"leaf_index": "0", "tree_size": "99999"},
    {"leaf_index": "1", "tree_size": "1"}, {"leaf_index": "0", "tree_size": "1" + "0" * 40},
    {"leaf_index": "٣", "tree_size": "1"},
])
def test_malformed_inclusion_requests_are_400s_naming_the_problem(client: FlaskClient, history: dict,
                                                                   query: dict) -> None:
    response = client.get("/ledger/proof/inclusion", query_string=query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request" and body["error_description"]


@pytest.mark.parametrize("query", [
    {"first": "2", "second": "1"}, {"first": "0", "second": "1"}, {"first": "1", "second": "99999"},
    {"first": "x", "second": "1"}, {"second": "1"}, {"first": "1", "second": "-2"},
])
def test_malformed_consistency_requests_are_400s_naming_the_problem(client: FlaskClient, history: dict,
                                                                     query: dict) -> None:
    response = client.get("/ledger/proof/consistency", query_string=query)
    assert response.status_code == 400 and response.get_json()["error_description"]


def test_auditors_read_entries_by_range(client: FlaskClient, history: dict, db_session: Session,
                                        agency: Agency) -> None:
    auditor = auditor_of(db_session, agency, method="client_secret_basic")
    size = history["tree_size"]
    response = client.post("/ledger/entries", **flows.authenticated(auditor, {"start": "0", "end": str(size)}))
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["entries"]
    assert [item["leaf_index"] for item in entries] == list(range(size))
    assert all(verify.leaf_hash(item["leaf"].encode()) == base64.b64decode(item["leaf_hash"]) for item in entries)
    assert {json.loads(item["leaf"])["type"] for item in entries} >= {"consent.granted", "disclosure"}


def test_entries_need_an_authenticated_client_granted_ledger_audit(client: FlaskClient, history: dict,
                                                                   db_session: Session, agency: Agency,
                                                                   secret_rp: RegisteredClient) -> None:
    data = {"start": "0", "end": "1"}
    assert client.post("/ledger/entries", data=data).status_code == 401
    assert client.post("/ledger/entries", **flows.authenticated(secret_rp, data)).status_code == 403
    auditor = auditor_of(db_session, agency, method="client_secret_basic")
    auditor.secret = "wrong"
    assert client.post("/ledger/entries", **flows.authenticated(auditor, data)).status_code == 401


@pytest.mark.parametrize("data", [{"start": "1", "end": "1"}, {"start": "0", "end": "99999"},
                                  {"start": "a", "end": "1"}, {"start": "0", "end": str(MAX_RANGE + 1)}])
def test_bad_entry_ranges_are_400s(client: FlaskClient, history: dict, db_session: Session, agency: Agency,
                                   data: dict) -> None:
    auditor = auditor_of(db_session, agency, method="client_secret_post")
    response = client.post("/ledger/entries", **flows.authenticated(auditor, data))
    assert response.status_code == 400 and response.get_json()["error_description"]


def auditor_of(session: Session, agency: Agency, *, method: str) -> RegisteredClient:
    """An auditor as an operator makes one: ``idp client grant-scope CLIENT_ID ledger:audit``."""
    auditor = make_client(session, agency, method=method, client_name="Auditor")
    grant_privileged_scope(auditor.model, AUDIT_SCOPE)
    session.commit()
    return auditor


def _own_receipt(client: FlaskClient) -> tuple[int, str]:
    record = client.get("/account/record.json").get_json()
    seq = record["entries"][0]["leaf_index"]
    return seq, client.get(f"/account/record/{seq}/receipt").get_data(as_text=True)


def test_anyone_with_a_receipt_and_two_checkpoints_can_verify_with_the_standalone_verifier(
        client: FlaskClient, history: dict, rp: RegisteredClient, db_session: Session, ledger: Ledger,
        tmp_path: Path) -> None:
    seq, receipt = _own_receipt(client)
    flows.tokens_for(client, rp)
    ledger.checkpoint(db_session)
    db_session.commit()
    later = client.get("/ledger/checkpoint").get_json()
    files = {
        "receipt.jws": receipt, "old.json": json.dumps(history), "new.txt": later["checkpoint"],
        "inclusion.json": client.get("/ledger/proof/inclusion", query_string={
            "leaf_index": seq, "tree_size": history["tree_size"]}).get_data(as_text=True),
        "consistency.json": client.get("/ledger/proof/consistency", query_string={
            "first": history["tree_size"], "second": later["tree_size"]}).get_data(as_text=True),
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    key = client.get("/ledger/key").get_json()["keys"][0]["verifier_key"]
    commands = [
        ["inclusion", "--key", key, "--checkpoint", "old.json", "--proof", "inclusion.json", "receipt.jws"],
        ["consistency", "--key", key, "--proof", "consistency.json", "old.json", "new.txt"],
        ["checkpoint", "--key", key, "new.txt"],
    ]
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "consent.verify", *command], cwd=tmp_path, capture_output=True,
                              text=True, env={"PYTHONPATH": str(ROOT)}, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("OK: ")


def test_a_tampered_receipt_fails_verification_naming_the_reason(client: FlaskClient, history: dict,
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    seq, receipt = _own_receipt(client)
    header, payload, signature = receipt.strip().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["entry"]["scopes"] = ["address"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    (tmp_path / "receipt.jws").write_text(f"{header}.{forged}.{signature}")
    (tmp_path / "cp.json").write_text(json.dumps(history))
    (tmp_path / "proof.json").write_text(json.dumps({"leaf_index": seq, "tree_size": history["tree_size"],
                                                     "inclusion_path": []}))
    key = client.get("/ledger/key").get_json()["keys"][0]["verifier_key"]
    status = verify.main(["inclusion", "--key", key, "--checkpoint", str(tmp_path / "cp.json"),
                          "--proof", str(tmp_path / "proof.json"), str(tmp_path / "receipt.jws")])
    assert status == 1
    assert "FAILED: the receipt's signature does not verify" in capsys.readouterr().err


def test_the_standalone_verifier_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse((ROOT / "consent" / "verify.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - sys.stdlib_module_names == {"cryptography"}
