"""Every query on the sign-in path uses an index (operations.md "Production and scale": no
full-table scans on any request path), checked with PostgreSQL's own planner.

A whole flow runs in process; each SELECT, UPDATE and DELETE it sent is then EXPLAINed with its
own parameters and ``enable_seqscan = off``: with that, the planner still answers with a
sequential scan only when no index can serve the query.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, event, text

from idp.models import Account
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows

# Tables read whole on purpose: the key snapshot (a handful of rows, cached per node for
# IDP_KEY_CACHE_SECONDS) and the ledger's single head row.
WHOLE_TABLE_READS = frozenset({"signing_keys", "ledger_head"})
PLANNED = ("SELECT", "UPDATE", "DELETE")


@pytest.fixture
def sent(engine: Engine, postgres_url: str) -> Iterator[list[tuple[str, Any]]]:
    captured: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith(PLANNED):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield captured
    event.remove(engine, "before_cursor_execute", record)


def sequential_scans(plan: dict[str, Any]) -> set[str]:
    found = {plan["Relation Name"]} if plan.get("Node Type") == "Seq Scan" else set()
    for child in plan.get("Plans", []):
        found |= sequential_scans(child)
    return found


def full_scans(connection: Connection, sent: list[tuple[str, Any]]) -> dict[str, set[str]]:
    connection.execute(text("SET LOCAL enable_seqscan = off"))
    scans: dict[str, set[str]] = {}
    for statement, parameters in sent:
        plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar_one()
        tables = sequential_scans(plan[0]["Plan"]) - WHOLE_TABLE_READS
        if tables:
            scans[" ".join(statement.split())[:300]] = tables
    return scans


def test_every_query_of_sign_in_and_token_use_runs_on_an_index(
        client: FlaskClient, citizen: Account, rp: flows.RegisteredClient, connection: Connection,
        sent: list[tuple[str, Any]]) -> None:
    client.post("/signin", data={"email": citizen.email, "password": "not " + CITIZEN_PASSWORD,
                                 "csrf_token": flows.csrf_token(client)})  # a failure, throttled
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    tokens = flows.tokens_for(client, rp, scope="openid email offline_access")
    tokens = flows.tokens_for(client, rp, scope="openid email offline_access")  # single sign-on
    refreshed = flows.refresh(client, rp, tokens["refresh_token"]).get_json()
    client.get("/userinfo", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    introspection = flows.authenticated(rp, {"token": refreshed["access_token"]})
    introspection["data"]["client_assertion"] = flows.client_assertion(rp, aud=f"{flows.ISSUER}/introspect")
    assert client.post("/introspect", **introspection).get_json()["active"] is True
    flows.refresh(client, rp, tokens["refresh_token"])  # reuse: the family is revoked

    assert len(sent) > 20
    assert full_scans(connection, sent) == {}
