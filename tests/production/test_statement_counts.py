"""No N+1 on the hot protocol paths: each request runs a small, fixed number of SQL statements,
whatever the number of tokens, sessions or clients (operations.md "Performance").

Token issuance also appends a ``disclosure`` to the consent ledger in the same transaction
(consent-ledger.md); its statements are counted apart, so each budget says what it pays for.
The key snapshot is reloaded at most once per ``IDP_KEY_CACHE_SECONDS`` and is not counted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, event

from idp.models import Account
from tests.idp import flows

# Transaction control is not a query: the test harness turns every commit into savepoints.
# The ledger secret (pseudonyms are derived from it), the head (locked), the entry, new tree nodes,
# subjects, receipt, the head again, and now and then a checkpoint.
LEDGER_APPEND = 8
LEDGER = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+ledger_|^SELECT accounts\.ledger_secret FROM")
CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|BEGIN|COMMIT|ROLLBACK)\b", re.I)


class Statements:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.active = False

    def record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.active and not CONTROL.match(statement):
            self.seen.append(" ".join(statement.split()))

    def during(self, call: Any) -> tuple[Any, list[str]]:
        self.seen, self.active = [], True
        try:
            return call(), self.seen
        finally:
            self.active = False


@pytest.fixture
def statements(engine: Engine) -> Iterator[Statements]:
    recorder = Statements()
    event.listen(engine, "before_cursor_execute", recorder.record)
    yield recorder
    event.remove(engine, "before_cursor_execute", recorder.record)


def split(seen: list[str]) -> tuple[list[str], list[str]]:
    """(protocol statements, ledger statements); key-cache reloads dropped."""
    kept = [statement for statement in seen if "FROM signing_keys" not in statement]
    ledger = [statement for statement in kept if LEDGER.search(statement)]
    return [statement for statement in kept if statement not in ledger], ledger


def assert_budget(seen: list[str], *, protocol: int, ledger: int = 0) -> None:
    own, appended = split(seen)
    assert len(own) <= protocol, "\n".join(own)
    assert len(appended) <= ledger, "\n".join(appended)
    assert_no_repeats(seen)


def assert_no_repeats(seen: list[str]) -> None:
    """The same statement twice in one request is how an N+1 starts."""
    repeated = {statement: count for statement, count in Counter(seen).items() if count > 1}
    assert not repeated, repeated


def warm(client: FlaskClient, rp: flows.RegisteredClient) -> dict[str, Any]:
    """A first flow, so the key cache is warm, as it is on a running node."""
    return flows.tokens_for(client, rp, scope="openid email offline_access")


@pytest.fixture
def tokens(client: FlaskClient, signed_in: Account, rp: flows.RegisteredClient) -> dict[str, Any]:
    warm(client, rp)
    return warm(client, rp)


def test_the_code_exchange_runs_a_fixed_small_number_of_statements(
        client: FlaskClient, signed_in: Account, rp: flows.RegisteredClient, statements: Statements) -> None:
    warm(client, rp)
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge, scope="openid email offline_access")["code"]
    response, seen = statements.during(lambda: flows.exchange_code(client, rp, code, challenge.verifier))
    assert response.status_code == 200
    # client, jti, code (read with its session's sid, claim), consent (read, last used), family,
    # code→family, participant (insert unless there), access and refresh token
    assert_budget(seen, protocol=11, ledger=LEDGER_APPEND)


def test_a_refresh_runs_a_fixed_small_number_of_statements(
        client: FlaskClient, rp: flows.RegisteredClient, tokens: dict[str, Any], statements: Statements) -> None:
    response, seen = statements.during(lambda: flows.refresh(client, rp, tokens["refresh_token"]))
    assert response.status_code == 200
    # client, jti, refresh token (read with family/client/account, claim), consent (read, last
    # used), access and refresh token
    assert_budget(seen, protocol=8, ledger=LEDGER_APPEND)


def test_userinfo_runs_one_statement(client: FlaskClient, tokens: dict[str, Any], statements: Statements) -> None:
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    response, seen = statements.during(lambda: client.get("/userinfo", headers=bearer))
    assert response.status_code == 200
    assert_budget(seen, protocol=1)  # the token with its family, client, agency and account


def test_introspection_runs_a_fixed_small_number_of_statements(
        client: FlaskClient, rp: flows.RegisteredClient, tokens: dict[str, Any], statements: Statements) -> None:
    request = flows.authenticated(rp, {"token": tokens["access_token"]})
    request["data"]["client_assertion"] = flows.client_assertion(rp, aud=f"{flows.ISSUER}/introspect")
    response, seen = statements.during(lambda: client.post("/introspect", **request))
    assert response.status_code == 200 and response.get_json()["active"] is True
    assert_budget(seen, protocol=3)  # client, jti, the token with everything it needs
