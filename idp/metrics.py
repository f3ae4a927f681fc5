"""Prometheus metrics (operations.md "Production and scale"), exposed at ``/metrics``.

* Per request: a counter by endpoint, method and status, and a latency histogram by endpoint.
  The label is the Flask endpoint name, never the path, so the number of series is bounded.
* Per outcome: tokens issued by grant type, failed sign-ins.
* Read from the database when scraped (cached for :data:`STATE_CACHE_SECONDS`): outbox
  backlog and ledger size, each only where its table exists, and whether the database answers.

Under gunicorn every worker is a process of its own: prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by ``idp/gunicorn_conf.py``) sums them at scrape time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Select, column, func, inspect, select, table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from idp.logs import request_duration

STATE_CACHE_SECONDS = 15.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SIGNIN_ENDPOINTS = frozenset({"signin.signin"})  # add passkey sign-in endpoints here
OUTBOX_TABLE = "outbox_messages"
LEDGER_HEAD_TABLE = "ledger_head"  # one row: the tree size, so no count over the entries

_registry = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("idp_http_requests", "HTTP requests by endpoint, method and status.",
                   ["endpoint", "method", "status"], registry=_registry)
LATENCY = Histogram("idp_http_request_duration_seconds", "Time to build the response, by endpoint.",
                    ["endpoint"], buckets=LATENCY_BUCKETS, registry=_registry)
TOKENS_ISSUED = Counter("idp_tokens_issued", "Token responses issued, by grant type.", ["grant_type"],
                        registry=_registry)
SIGNIN_FAILURES = Counter("idp_signin_failures", "Sign-in attempts that did not sign anyone in.",
                          registry=_registry)


def count_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(endpoint, method, str(status)).inc()
    LATENCY.labels(endpoint).observe(seconds)


def observe_request(response: Response) -> Response:
    endpoint = request.endpoint or "unmatched"
    status = response.status_code
    count_request(endpoint, request.method, status, request_duration())
    if endpoint == "protocol.token" and status == 200:
        TOKENS_ISSUED.labels(request.form.get("grant_type", "unknown")[:40]).inc()
    elif endpoint in SIGNIN_ENDPOINTS and request.method == "POST" and status >= 400:
        SIGNIN_FAILURES.inc()
    return response


class DatabaseState(Collector):
    """Gauges read from the database at scrape time, at most every ``ttl`` seconds."""

    def __init__(self, sessions: sessionmaker[Session], ttl: float = STATE_CACHE_SECONDS) -> None:
        self._sessions, self._ttl = sessions, ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] >= self._ttl:
                self._cached = (time.monotonic(), self._read())
            yield from self._cached[1]

    def _read(self) -> list[Metric]:
        try:
            with self._sessions() as session:
                connection = session.connection()
                tables = set(inspect(connection).get_table_names())
                outbox = connection.scalar(_outbox_backlog()) if OUTBOX_TABLE in tables else None
                ledger = connection.scalar(_ledger_size()) if LEDGER_HEAD_TABLE in tables else None
        except DBAPIError:
            return [_gauge("idp_database_up", "Whether the database answered the last scrape.", 0)]
        found: list[Metric] = [_gauge("idp_database_up", "Whether the database answered the last scrape.", 1)]
        if outbox is not None:
            found.append(_gauge("idp_outbox_backlog", "Outbox messages not yet sent nor given up.", outbox))
        if ledger is not None:
            found.append(_gauge("idp_ledger_size", "Entries appended to the consent ledger.", ledger))
        return found


def _outbox_backlog() -> Select[int]:
    outbox = table(OUTBOX_TABLE, column("sent_at"), column("failed_at"))
    pending = outbox.c.sent_at.is_(None) & outbox.c.failed_at.is_(None)
    return select(func.count()).select_from(outbox).where(pending)


def _ledger_size() -> Select[int]:
    head = table(LEDGER_HEAD_TABLE, column("size"))
    return select(head.c.size).limit(1)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class Exposition:
    """What ``/metrics`` answers: this process's (or every worker's) metrics and the database state."""

    def __init__(self, sessions: sessionmaker[Session], multiprocess_dir: Path | None) -> None:
        self._requests = _registry
        if multiprocess_dir is not None:
            self._requests = CollectorRegistry()
            # prometheus_client leaves this constructor unannotated
            MultiProcessCollector(self._requests, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
        self._state = CollectorRegistry()
        self._state.register(DatabaseState(sessions))

    def render(self) -> Response:
        body = generate_latest(self._requests) + generate_latest(self._state)
        return Response(body, mimetype=None, content_type=CONTENT_TYPE_PLAIN_0_0_4,
                        headers={"Cache-Control": "no-store"})


def init_metrics(app: Flask, sessions: sessionmaker[Session], multiprocess_dir: Path | None) -> None:
    app.extensions["idp_metrics"] = Exposition(sessions, multiprocess_dir)
    app.after_request(observe_request)
