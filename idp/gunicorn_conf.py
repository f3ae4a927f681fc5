"""gunicorn settings for production nodes: ``gunicorn -c python:idp.gunicorn_conf idp.wsgi:app``.

Any setting can be overridden on the command line (``--bind``, ``--workers``, ``--threads``)
or in ``GUNICORN_CMD_ARGS``. The service itself is configured by ``IDP_*`` variables only
(``idp/config.py``); docs/deploy.md explains the choices below.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from gunicorn import glogging

if TYPE_CHECKING:
    from gunicorn.glogging import _AtomsDict  # types-gunicorn's name for what Logger.atoms returns

# prometheus-client sums every worker's metrics from files in this folder (its own variable,
# read when prometheus_client is first imported: so before anything imports it).
_OWN_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _OWN_METRICS_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="idp-metrics-")

from prometheus_client import multiprocess  # noqa: E402

from idp.logs import LOGGED_PATH, JsonFormatter  # noqa: E402

bind = "0.0.0.0:8000"
# The work is CPU-bound Python (signing, verifying, SQL): a process per core for parallelism,
# plus threads to overlap database round trips. Measured in bench/http (2 cores, alternating
# runs): 1 thread per process served JWKS ~30% slower than 4 (4,000-4,300 against 6,100-6,200
# req/s) and token and userinfo no faster, though each token request cost ~15% less CPU.
workers = multiprocessing.cpu_count() * 2
worker_class = "gthread"
threads = 4
# Longer than the load balancer's idle timeout, so the balancer, not us, closes idle connections.
keepalive = 75
timeout = 30
graceful_timeout = 25
# Recycle workers now and then, staggered, so slow leaks cannot build up.
max_requests = 20_000
max_requests_jitter = 2_000
# Build the app once in the master: a configuration error stops the node before it forks.
preload_app = True
# Several nodes may share a host (and the tests run two): no shared control socket.
control_socket_disable = True

# The application writes one JSON line per request (idp.access) with its request id and the
# path without the query string, its secret parts redacted. gunicorn's own access log is off; if
# an operator turns it on (--access-logfile -), this format also leaves the query string (codes,
# states, hints) out, and JsonLogger shows the path as the application logs it.
accesslog = None
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(D)sus request_id=%({x-request-id}o)s'


class JsonLogger(glogging.Logger):
    """gunicorn's own messages as JSON lines, like the application's."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())

    def atoms(self, resp: Any, req: Any, environ: MutableMapping[str, Any], request_time: Any) -> _AtomsDict:
        """Every atom that carries the path carries it as the application logs it (``idp.logs``:
        secret route variables redacted, no query string), whatever ``access_log_format`` says."""
        atoms = super().atoms(resp, req, environ, request_time)
        path = environ.get(LOGGED_PATH)
        if path is None:  # answered before routing (discovery, JWKS): no secret in those paths
            return atoms
        atoms["U"] = path
        atoms["r"] = f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}"
        atoms["q"] = "-"
        for key in ("{path_info}e", "{raw_uri}e", "{request_uri}e", "{query_string}e"):
            if key in atoms:
                # types-gunicorn's _AtomsDict omits the {name}e atoms gunicorn adds for each environ variable
                atoms[key] = path if key != "{query_string}e" else "-"  # type: ignore[typeddict-unknown-key]
        return atoms


logger_class = JsonLogger


def post_fork(server: Any, worker: Any) -> None:
    # Connections must never be shared across fork; the preloaded app opened none, but be sure.
    server.app.wsgi().extensions["idp"].engine.dispose(close=False)


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # unannotated in prometheus_client


def on_exit(server: Any) -> None:
    if _OWN_METRICS_DIR:
        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)


def worker_abort(worker: Any) -> None:
    logging.getLogger("gunicorn.error").error("worker timed out", extra={"pid": worker.pid})
