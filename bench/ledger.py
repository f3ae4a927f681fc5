"""Benchmark of the consent ledger on PostgreSQL (not part of the test suite).

Bulk-loads N entries (default 1,000,000) straight into the ledger tables with COPY — hashes and
stored subtrees computed exactly as appends compute them, a signed checkpoint every 100,000 —
then measures, at that size: append overhead per event, inclusion and consistency proof latency,
and ``idp ledger verify`` (``consent.audit.audit``) time. Prints a table.

    IDP_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench_ledger \\
        .venv/bin/python -m bench.ledger [--entries 1000000]

The database's ledger tables are emptied first: give it a database of its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from consent import merkle, notes
from consent.audit import audit
from consent.events import EventType, build_entry, canonical
from consent.ledger import Ledger
from consent.models import LedgerHead
from consent.verify import leaf_hash
from idp.app import build_services
from idp.config import Settings
from idp.consent_ledger import ledger_for
from store.migrate import upgrade

LEDGER_TABLES = "ledger_receipts, ledger_subjects, ledger_nodes, ledger_checkpoints, ledger_entries"
CHECKPOINT_EVERY = 100_000
CITIZENS = 50_000
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000, help="proof requests per kind")
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--reuse", action="store_true", help="keep a ledger already loaded to that size")
    args = parser.parse_args()
    url = os.environ.get("IDP_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_ledger")
    if not url.startswith("postgresql"):
        print("the benchmark runs on PostgreSQL: set IDP_BENCH_DATABASE_URL", file=sys.stderr)
        return 2
    upgrade(url)
    instance = Path(tempfile.gettempdir()) / "bench-ledger-instance"  # keeps its key-encryption key between runs
    # A fixed issuer: it names the ledger's origin, which every stored checkpoint is signed under.
    settings = Settings.from_env(environ={}, database_url=url, instance_path=instance, issuer="http://127.0.0.1:5000")
    services = build_services(settings)
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
    ledger = ledger_for(settings, services.keyring)
    rows: list[tuple[str, str]] = []
    with services.sessions() as session:
        loaded = ledger.size(session)
    if not (args.reuse and loaded >= args.entries):
        seconds = _timed(lambda: bulk_load(services.sessions, ledger, args.entries))
        rows.append((f"bulk load of {args.entries:,} entries (COPY, not an append path)", f"{seconds:.1f} s"))
    rows += measure_appends(services.sessions, ledger, args.appends)
    rows += measure_proofs(services.sessions, ledger, args.samples)
    rows += measure_verify(services.sessions, ledger)
    _print_table(rows)
    services.engine.dispose()
    return 0


def bulk_load(sessions: sessionmaker[Session], ledger: Ledger, count: int) -> None:
    """Entries, leaf hashes, subtrees, subjects and checkpoints, as ``Ledger.append`` would store them."""
    with sessions.begin() as session:
        session.execute(text(f"TRUNCATE {LEDGER_TABLES}"))
        raw = session.connection().connection.driver_connection
        assert raw is not None
        frontier: list[bytes] = []
        roots: dict[int, bytes] = {}
        nodes: list[tuple[int, int, bytes]] = []  # one COPY at a time per connection
        with raw.cursor() as cursor:
            with cursor.copy("COPY ledger_entries (seq, leaf, leaf_hash, type, created_at) FROM STDIN") as entries:
                for seq in range(count):
                    frontier = _load_one(seq, frontier, entries, nodes)
                    if (seq + 1) % CHECKPOINT_EVERY == 0 or seq + 1 == count:
                        roots[seq + 1] = merkle.fold(frontier)
            with cursor.copy("COPY ledger_nodes (level, idx, hash) FROM STDIN") as copy:
                for row in nodes:
                    copy.write_row(row)
            with cursor.copy("COPY ledger_subjects (pseudonym, seq) FROM STDIN") as subjects:
                for seq in range(count):
                    subjects.write_row((f"citizen-{seq % CITIZENS}", seq))
        key = ledger.keys.ledger_signing_key(session)
        for size, root in roots.items():
            note = notes.sign_note(notes.checkpoint_text(ledger.origin, size, root), ledger.origin, key)
            session.execute(text("INSERT INTO ledger_checkpoints (tree_size, root_hash, note, created_at) "
                                 "VALUES (:size, :root, :note, now())"), {"size": size, "root": root, "note": note})
        session.execute(update(LedgerHead).values(size=count, frontier=merkle.pack(frontier),
                                                  checkpoint_size=count, checkpoint_at=dt.datetime.now(dt.UTC)))
    with sessions.begin() as session:
        session.execute(text("ANALYZE"))
    with sessions() as session:  # flush the load's WAL now, not during the measurements
        session.connection().execution_options(isolation_level="AUTOCOMMIT").execute(text("CHECKPOINT"))


def _load_one(seq: int, frontier: list[bytes], entries: Any, nodes: list[tuple[int, int, bytes]]) -> list[bytes]:
    fields = {"subject": f"citizen-{seq % CITIZENS}", "agency": f"agency-{seq % 40}", "client": f"client-{seq % 90}",
              "scopes": ["email", "openid", "profile"], "claims": ["email", "email_verified", "family_name",
                                                                     "given_name", "name"], "basis": "consent"}
    when = START + dt.timedelta(milliseconds=seq * 31)
    leaf = canonical(build_entry(seq, when, EventType.DISCLOSURE, fields))
    hashed = leaf_hash(leaf)
    entries.write_row((seq, leaf.decode(), hashed, "disclosure", when))
    frontier, completed = merkle.append_leaf(seq, frontier, hashed)
    nodes.extend((level, idx, node) for (level, idx), node in completed)
    return frontier


def measure_appends(sessions: sessionmaker[Session], ledger: Ledger, count: int) -> list[tuple[str, str]]:
    """A one-row write transaction (a consent change) with and without its ledger append, each
    committed (fsync included in both); the difference is the append's overhead."""
    def change(session: Session) -> None:
        session.execute(text("UPDATE ledger_head SET checkpoint_at = checkpoint_at WHERE id = 1"))

    def without() -> None:
        with sessions.begin() as session:
            change(session)

    def with_append() -> None:
        with sessions.begin() as session:
            change(session)
            ledger.append(session, EventType.CONSENT_WITHDRAWN,
                          {"subject": "citizen-1", "agency": "agency-1", "scopes": ["email"]})

    base = [_timed(without) for _ in range(count)]
    appended = [_timed(with_append) for _ in range(count)]
    overhead = statistics.median(appended) - statistics.median(base)
    return [
        (f"append: transaction with the append, median of {count}", _ms(statistics.median(appended))),
        ("append: same transaction without it, median", _ms(statistics.median(base))),
        ("append overhead per event (median difference)", _ms(overhead)),
        ("append with its transaction, p99", _ms(_p99(appended))),
    ]


def measure_proofs(sessions: sessionmaker[Session], ledger: Ledger, samples: int) -> list[tuple[str, str]]:
    rng = random.Random(9162)
    rows = []
    with sessions() as session:
        size = ledger.size(session)
        inclusion = [_timed(lambda: ledger.inclusion_proof(session, rng.randrange(size), size)) for _ in range(samples)]
        pairs = [sorted((rng.randrange(1, size + 1), rng.randrange(1, size + 1))) for _ in range(samples)]
        consistency = [_timed(lambda p=p: ledger.consistency_proof(session, p[0], p[1])) for p in pairs]
    for name, values in (("inclusion proof", inclusion), ("consistency proof", consistency)):
        rows.append((f"{name} at {size:,} entries: p50 / p99 of {samples}",
                     f"{_ms(statistics.median(values))} / {_ms(_p99(values))}"))
    return rows


def measure_verify(sessions: sessionmaker[Session], ledger: Ledger) -> list[tuple[str, str]]:
    times, report = [], None
    for _ in range(3):
        with sessions() as session:
            started = time.perf_counter()
            report = audit(session, ledger)
            times.append(time.perf_counter() - started)
    assert report is not None and report.ok, report.problems if report else None
    return [(f"idp ledger verify at {report.size:,} entries, {report.checkpoints} checkpoints (median of 3)",
             f"{statistics.median(times):.1f} s")]


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | result |")
    print(f"| {'-' * width} | ------ |")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    sys.exit(main())
