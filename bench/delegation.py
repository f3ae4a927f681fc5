"""Benchmark of the delegation checks on the sign-in path, on PostgreSQL (not part of the test suite).

Bulk-loads P people (default 500,000) and D delegations among them (default 1,000,000; most
active, the rest suspended, revoked, expired or declined; some limited to agencies or scopes)
with COPY, then measures with the service's own functions, one fresh identity map per call:

* listing whom a delegate may act for with one agency (``consent.acting.may_act_for``), and
* checking one (delegate, principal's delegation, client, scopes) tuple (``idp.acting.grant_for``:
  the delegation, its parent, the principal's account and consent — what every token issuance does).

    IDP_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench_delegation \\
        .venv/bin/python -m bench.delegation [--people 500000] [--delegations 1000000] [--reuse]

The database's accounts and delegations are emptied first: give it a database of its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from consent.acting import may_act_for
from idp.acting import grant_for
from idp.models import Client
from store.migrate import upgrade

TARGET_MS = 5.0
NOW = dt.datetime.now(dt.UTC)
AGENCIES = [str(uuid.uuid4()) for _ in range(20)]
STATUSES = ["active"] * 8 + ["suspended", "revoked", "expired", "declined"]
SCOPES = [None, None, "openid profile", "openid profile email benefits:apply"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=500_000)
    parser.add_argument("--delegations", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--reuse", action="store_true", help="measure the data a previous run loaded")
    args = parser.parse_args()
    url = os.environ.get("IDP_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_delegation")
    if not url.startswith("postgresql"):
        print("the benchmark runs on PostgreSQL: set IDP_BENCH_DATABASE_URL", file=sys.stderr)
        return 2
    upgrade(url)
    engine = create_engine(url)
    random.seed(20261130)
    if args.reuse:
        with engine.connect() as connection:
            people = list(connection.scalars(text("SELECT id FROM accounts TABLESAMPLE SYSTEM (2)")))
            AGENCIES[:] = list(connection.scalars(text("SELECT id FROM agencies")))
            args.people = connection.scalar(text("SELECT count(*) FROM accounts"))
            args.delegations = connection.scalar(text("SELECT count(*) FROM delegations"))
    else:
        people = [str(uuid.uuid4()) for _ in range(args.people)]
        started = time.perf_counter()
        load(engine, people, args.delegations)
        print(f"loaded {args.people:,} people and {args.delegations:,} delegations in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    with Session(engine) as session:
        print(explain(session), flush=True)
        rows = [measure_listing(session, people, args.samples), measure_check(session, args.samples)]
    report(rows, args)
    engine.dispose()
    return 0 if all(row[2] < TARGET_MS for row in rows) else 1


# --- loading --------------------------------------------------------------------------------

def load(engine: object, people: list[str], delegations: int) -> None:
    with engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(text("TRUNCATE delegation_changes, delegations, accounts, agencies CASCADE"))
        raw = connection.connection.dbapi_connection
        with raw.cursor() as cursor:
            with cursor.copy("COPY agencies (id, name, sector_identifier, subject_salt, allow_public_subjects, "
                             "created_at) FROM STDIN") as copy:
                for agency_id in AGENCIES:
                    copy.write_row((agency_id, "Agency", f"urn:agency:{agency_id}", os.urandom(32), False, NOW))
            with cursor.copy("COPY accounts (id, email, email_verified, given_name, family_name, "
                             "phone_number_verified, locale, status, created_at, updated_at) FROM STDIN") as copy:
                for index, person in enumerate(people):
                    copy.write_row((person, f"p{index}@example.com", True, "Pat", "Example", False, "en", "active",
                                    NOW, NOW))
            with cursor.copy("COPY delegations (id, principal_id, delegate_id, type, basis, agencies, scopes, mode, "
                             "may_delegate_onward, starts_at, ends_at, status, status_reason, status_changed_at, "
                             "status_changed_by, notify, created_at, created_by) FROM STDIN") as copy:
                for _ in range(delegations):
                    copy.write_row(delegation_row(people))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:  # type: ignore[attr-defined]
        connection.execute(text("VACUUM ANALYZE delegations"))
        connection.execute(text("ANALYZE accounts"))


def delegation_row(people: list[str]) -> tuple[object, ...]:
    principal, delegate = random.sample(people, 2)
    status = random.choice(STATUSES)
    agencies = None if random.random() < 0.7 else f'["{random.choice(AGENCIES)}"]'
    start = NOW - dt.timedelta(days=random.randint(1, 300))
    return (str(uuid.uuid4()), principal, delegate, random.choice(("carer", "family")), "consent", agencies,
            random.choice(SCOPES), random.choice(("act", "act", "view")), False, start,
            start + dt.timedelta(days=365), status, "accepted" if status == "active" else "revoked_by_principal",
            start, "account:bench", True, start, "account:bench")


# --- measuring ------------------------------------------------------------------------------

def explain(session: Session) -> str:
    delegate = session.scalar(text("SELECT delegate_id FROM delegations LIMIT 1"))
    plan = session.execute(text("EXPLAIN SELECT * FROM delegations WHERE delegate_id = :d AND status = 'active' "
                                "ORDER BY created_at"), {"d": delegate}).scalars().all()
    return "listing plan:\n  " + "\n  ".join(plan)


def timed(session: Session, samples: list[Callable[[], object]]) -> list[float]:
    times = []
    for call in samples:
        session.expunge_all()  # no help from the identity map: each call reads the database
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
        session.rollback()
    return times


def measure_listing(session: Session, people: list[str], samples: int) -> tuple[str, int, float, float, float]:
    with_some = list(session.scalars(text(f"SELECT delegate_id FROM delegations TABLESAMPLE SYSTEM (1) "
                                          f"LIMIT {samples}")))
    calls = [lambda d=d: may_act_for(session, d, agency_id=random.choice(AGENCIES)) for d in with_some]
    calls += [lambda d=d: may_act_for(session, d) for d in random.sample(people, min(len(people), samples // 5))]
    return summary("list whom a delegate may act for", timed(session, calls))


def measure_check(session: Session, samples: int) -> tuple[str, int, float, float, float]:
    rows = session.execute(text(f"SELECT id, delegate_id, agencies FROM delegations TABLESAMPLE SYSTEM (1) "
                                f"WHERE status = 'active' LIMIT {samples}")).all()
    clients = {agency: Client(client_id=f"bench-{agency[:8]}", agency_id=agency, scope="openid profile email "
                              "benefits:apply offline_access", statutory_basis=None, delegation_supported=True,
                              subject_type="pairwise") for agency in AGENCIES}

    def check(delegation_id: str, delegate_id: str, agencies: object) -> None:
        agency = (agencies[0] if isinstance(agencies, list) else None) or random.choice(AGENCIES)
        grant_for(session, clients[agency], delegation_id, delegate_id, ["openid", "profile", "benefits:apply"])

    calls = [lambda r=r: check(r.id, r.delegate_id, r.agencies) for r in rows]
    return summary("check one (delegate, principal, client, scopes)", timed(session, calls))


def summary(name: str, times: list[float]) -> tuple[str, int, float, float, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return name, len(times), statistics.median(ordered), p99, ordered[-1]


def report(rows: list[tuple[str, int, float, float, float]], args: argparse.Namespace) -> None:
    print(f"\n{args.people:,} people, {args.delegations:,} delegations (PostgreSQL); target p99 < {TARGET_MS} ms\n")
    print(f"| {'operation':<48} | {'samples':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} |")
    print(f"|{'-' * 50}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for name, count, p50, p99, worst in rows:
        print(f"| {name:<48} | {count:>7} | {p50:>7.2f} | {p99:>7.2f} | {worst:>7.2f} |")

if __name__ == "__main__":
    raise SystemExit(main())
