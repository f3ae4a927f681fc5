"""The ``idp`` command line: one JSON object on stdout for what it creates (operations.md "CLI")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from joserfc.jwk import ECKey

from idp.cli import main


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"}
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)

    assert invoke("db", "upgrade").exit_code == 0
    return invoke


def _json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_agency_and_clients_are_created_with_json_output(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    agency = _json(run("agency", "create", "--name", "Department of Examples"))
    assert set(agency) == {"id", "initial_access_token"}
    secret_client = _json(run("client", "create", "--agency", agency["id"], "--name", "Web",
                              "--redirect-uri", "https://web.example/cb", "--auth-method", "client_secret_basic"))
    assert set(secret_client) == {"client_id", "client_secret"}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}))
    key_client = _json(run("client", "create", "--agency", agency["id"], "--name", "Api",
                           "--redirect-uri", "https://api.example/cb", "--redirect-uri", "https://api.example/cb2",
                           "--jwks-file", str(jwks), "--grant-type", "authorization_code"))
    assert set(key_client) == {"client_id"}


def test_invalid_client_metadata_fails_with_a_message(run) -> None:  # type: ignore[no-untyped-def]
    agency = _json(run("agency", "create", "--name", "Dept"))
    result = run("client", "create", "--agency", agency["id"], "--name", "Web", "--redirect-uri",
                 "http://web.example/cb", "--auth-method", "client_secret_basic")
    assert result.exit_code != 0
    assert "invalid_redirect_uri" in result.output
    missing = run("client", "create", "--agency", "no-such-agency", "--name", "W", "--redirect-uri",
                  "https://w.example/cb")
    assert missing.exit_code != 0 and "no agency" in missing.output


def test_user_create_reads_the_password_from_stdin(run) -> None:  # type: ignore[no-untyped-def]
    created = _json(run("user", "create", "--email", "Grace@Example.com", "--given-name", "Grace",
                        "--family-name", "Hopper", "--birthdate", "1906-12-09", "--password-stdin",
                        stdin="a long enough password\n"))
    assert set(created) == {"id"}
    again = run("user", "create", "--email", "grace@example.com", "--given-name", "G", "--family-name", "H",
                "--password-stdin", stdin="another long password\n")
    assert again.exit_code != 0 and "already exists" in again.output
    short = run("user", "create", "--email", "x@example.com", "--given-name", "G", "--family-name", "H",
                "--password-stdin", stdin="short\n")
    assert short.exit_code != 0 and "12 characters" in short.output


def test_keys_list_and_rotate(run) -> None:  # type: ignore[no-untyped-def]
    listed = [json.loads(line) for line in run("keys", "list").stdout.splitlines()]
    before = {key["alg"]: key["kid"] for key in listed if key["state"] == "next" and key["purpose"] == "token"}
    rotated = _json(run("keys", "rotate"))
    assert rotated["current"] == before  # the published next key became current
    states = {json.loads(line)["kid"]: json.loads(line)["state"] for line in run("keys", "list").stdout.splitlines()}
    assert all(states[kid] == "current" for kid in before.values())
    assert "retired" in states.values()


def test_only_grant_scope_gives_a_client_ledger_audit(run) -> None:  # type: ignore[no-untyped-def]
    agency = _json(run("agency", "create", "--name", "Audit Office"))
    asked = run("client", "create", "--agency", agency["id"], "--name", "Auditor", "--redirect-uri",
                "https://audit.example/cb", "--auth-method", "client_secret_basic", "--scope", "openid ledger:audit")
    assert asked.exit_code != 0 and "invalid_client_metadata" in asked.output
    created = _json(run("client", "create", "--agency", agency["id"], "--name", "Auditor", "--redirect-uri",
                        "https://audit.example/cb", "--auth-method", "client_secret_basic"))
    granted = _json(run("client", "grant-scope", created["client_id"], "ledger:audit"))
    assert granted == {"client_id": created["client_id"], "privileged_scopes": ["ledger:audit"]}
    assert _json(run("client", "grant-scope", created["client_id"], "ledger:audit")) == granted  # idempotent
    revoked = _json(run("client", "revoke-scope", created["client_id"], "ledger:audit"))
    assert revoked["privileged_scopes"] == []
    not_privileged = run("client", "grant-scope", created["client_id"], "email")
    assert not_privileged.exit_code != 0 and "not a privileged scope" in not_privileged.output
    missing = run("client", "grant-scope", "no-such-client", "ledger:audit")
    assert missing.exit_code != 0 and "no client" in missing.output
